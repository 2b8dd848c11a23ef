# Dask distributed's empty-task throughput, the baseline jobbench prints
# beside Baton's: a local cluster of 2 worker processes x 4 threads (the
# slots Baton's executors have), n tasks that do nothing, submit to the
# last result as the client sees it. Prints "<tasks> <seconds>".
import sys
import time

from distributed import Client, LocalCluster, wait


def noop(i):
    return None


def main():
    n = int(sys.argv[1])
    with LocalCluster(n_workers=2, threads_per_worker=4, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        client.submit(noop, -1).result()  # warm up
        t0 = time.perf_counter()
        futures = client.map(noop, range(n), pure=False)
        wait(futures)
        d = time.perf_counter() - t0
        print(n, d)


if __name__ == "__main__":
    main()

"""The large step's GEMMs in blocks of 20 steps for SECONDS_ (default 150): each block's median, each
vCPU's busy/idle/steal ticks (/proc/stat) and each thread's vCPU and ticks (/proc/self/task): what a slow
phase looks like from inside the VM."""
import time, os, numpy as np, statistics
B=512; f=np.float32; r=np.random.default_rng(0)
X=r.standard_normal((B,784),f); W1=r.standard_normal((784,1024),f); W2=r.standard_normal((1024,1024),f); D=r.standard_normal((B,1024),f)
a=np.empty((B,1024),f); b=np.empty_like(a); d1=np.empty_like(a); g2=np.empty((1024,1024),f); g1=np.empty((784,1024),f)
def step():
    np.matmul(X,W1,out=a); np.matmul(a,W2,out=b); np.matmul(a.T,D,out=g2); np.matmul(D,W2.T,out=d1); np.matmul(X.T,d1,out=g1)
def cpu_times():
    out = []
    for line in open('/proc/stat'):
        if line.startswith('cpu') and line[3].isdigit():
            v = list(map(int, line.split()[1:]))
            out.append((v[0]+v[1]+v[2], v[3], v[7]))  # busy (user+nice+sys), idle, steal
    return out
def threads():
    res = {}
    for tid in os.listdir('/proc/self/task'):
        st = open(f'/proc/self/task/{tid}/stat').read().rsplit(')', 1)[1].split()
        res[tid] = (int(st[36]), int(st[11]) + int(st[12]))  # processor, utime+stime
    return res
end = time.time() + float(os.environ.get('SECONDS_', 150))
while time.time() < end:
    c0, t0 = cpu_times(), threads()
    ts = []
    for _ in range(20):
        s = time.perf_counter(); step(); ts.append(time.perf_counter() - s)
    c1, t1 = cpu_times(), threads()
    cpus = " ".join(f"cpu{i}: busy {c1[i][0]-c0[i][0]:3d} idle {c1[i][1]-c0[i][1]:3d} steal {c1[i][2]-c0[i][2]}" for i in range(len(c0)))
    th = " ".join(f"{tid[-3:]}@{t1[tid][0]}:{t1[tid][1]-t0.get(tid,(0,0))[1]}" for tid in t1 if t1[tid][1]-t0.get(tid,(0,0))[1] > 0)
    print(f"{statistics.median(ts)*1e3:5.1f} ms | {cpus} | threads {th}", flush=True)

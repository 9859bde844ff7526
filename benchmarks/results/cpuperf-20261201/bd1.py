"""benchmarks.breakdown at 1 BLAS thread with process CPU time (robust on a shared machine)."""
import sys, time, types
from benchmarks import breakdown
breakdown.time = types.SimpleNamespace(perf_counter=time.process_time)
rs = [breakdown.breakdown(c, int(sys.argv[1]), 1) for c in sys.argv[2:]]
print(breakdown.markdown(rs).splitlines()[-len(rs):] and "\n".join(breakdown.markdown(rs).splitlines()[2:]))

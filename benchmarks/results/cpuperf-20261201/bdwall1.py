import sys
from benchmarks import breakdown
rs = [breakdown.breakdown(c, int(sys.argv[1]), int(sys.argv[2])) for c in sys.argv[3:]]
print("\n".join(breakdown.markdown(rs).splitlines()[2:]))

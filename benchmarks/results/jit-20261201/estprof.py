"""cProfile of one FastBPClassifier.partial_fit epoch on the medium case (where the estimator's epoch goes)."""
import cProfile, pstats, time
from benchmarks import cases, contenders
spec = cases.CASES["medium"].spec
c = contenders.FastbpEstimator(spec)
c.epoch()
t = time.perf_counter(); c.epoch(); print("epoch", time.perf_counter() - t)
pr = cProfile.Profile(); pr.enable(); c.epoch(); pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(14)

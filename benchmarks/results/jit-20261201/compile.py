"""The compiled step against reference_step for six nets, with the time to get each step (compile on an
empty cache: XDG_CACHE_HOME=$(mktemp -d); then again on the filled one)."""
import numpy as np, time
from fastbp.nn.network import Network
from fastbp.nn import optim
from fastbp.train.loop import step_of, reference_step
from fastbp import jit
for hidden, output, cost, dt in [("sigmoid","softmax","log_likelihood","float64"),("relu","softmax","log_likelihood","float32"),("tanh","sigmoid","cross_entropy","float64"),("leaky_relu","identity","quadratic","float64"),("relu","exp","poisson","float64"),("sigmoid","tanh","quadratic","float64")]:
    kw=dict(hidden=hidden, output=output, cost=cost, dtype=dt, seed=3, init="glorot")
    a, b = Network([11,8,6,4], **kw), Network([11,8,6,4], **kw)
    rng=np.random.default_rng(0); X=rng.standard_normal((13,11)).astype(dt); lab=rng.integers(0,4,13)
    Y=np.eye(4,dtype=dt)[lab] if output in ("softmax","sigmoid") else rng.random((13,4)).astype(dt)
    t=time.time(); s=step_of(b); print(type(s).__name__, end=" ")
    h1=np.zeros(13,bool); h2=np.zeros(13,bool)
    c1=reference_step(a,X,Y,lab,h1); c2=s(X,Y,lab,h2)
    print(hidden,output,cost,dt, "compile+run %.2fs"%(time.time()-t), float(c1), c2, np.abs(a.grads-b.grads).max(), (h1==h2).all())

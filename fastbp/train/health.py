"""Training health: what fastbp can see going wrong in a run that has not
diverged, and what to do about it (Nielsen's chapters 2, 3 and 5).

    unscaled inputs     the training inputs, after fastbp's own scaling, far outside [-1, 1]
    dead units          ReLU units that never fire on the probe rows
    saturated units     sigmoid/tanh units with σ'(z) ≈ 0 on most probe rows
    learning slowdown   a sigmoid output with the quadratic cost, saturated at the wrong
                        value: BP1's σ'(z^L) factor all but stops it learning
    vanishing/exploding per-layer ‖∂C/∂W‖ orders of magnitude apart, or growing by
                        orders of magnitude from one epoch to the next
    not learning        the training loss flat at its first epoch's value and the
                        accuracy at chance

The inputs are checked once; the rest once per epoch, on a fixed probe of the
first training rows: one forward pass (and, where the caller has no gradient
norms, one backward pass) over it, every figure reduced on the device and
brought to the host in one transfer. Each problem is reported once, the first
time it shows, as one line naming the layer, the figure and the likely fix in
the caller's own terms (config keys for a run, parameters for the estimators).
"""

from __future__ import annotations

PROBE_ROWS = 2048
INPUT_MAX = 10.0  # |x| a network expects is about 1; MNIST's pixels are in [0, 1]
ESTIMATOR_INPUT_MAX = 1e3  # scikit-learn's users pass their own features (digits' 0..16 trains fine)
DEAD = 0.5  # fraction of a ReLU layer's units never active
FLAT_SLOPE = 0.01  # σ'(z) below this: the unit barely passes a gradient
SATURATED_ROWS = 0.99  # ... on nearly every probe row (a trained unit may be a binary feature detector)
SATURATED = 0.5  # fraction of a sigmoid/tanh layer's units saturated
WRONG = 0.1  # fraction of sigmoid outputs saturated at the wrong value (quadratic cost)
MIN_UNITS, MIN_ROWS = 8, 50  # fewer units or probe rows: a fraction says little (scikit-learn's tests)
GRAD_RATIO = 1e4  # largest / smallest layer ‖∂C/∂W‖
GRAD_GROWTH = 1e3  # a layer's ‖∂C/∂W‖ from one epoch to the next
FLAT_EPOCHS = 3  # the not-learning check waits this many epochs
FLAT_LOSS = 1e-4  # relative change of the training loss since epoch 1: slow learning is not "not learning"

# The fixes, in a config's terms (a run) and in the estimators' parameters; None: no such knob.
RUN_FIXES = {
    "scale": "data.standardize = true",
    "lr": "a lower optimizer.lr (now {lr:g})",
    "lr_check": "another optimizer.lr (now {lr:g})",
    "he": 'model.init = "he"',
    "glorot": 'model.init = "glorot"',
    "leaky": 'model.hidden = "leaky_relu"',
    "relu": 'model.hidden = "relu"',
    "cost": 'model.cost = "cross_entropy"',
    "clip": "optimizer.clip_norm = 1",
}
ESTIMATOR_FIXES = {
    "scale": "scaling X (sklearn.preprocessing.StandardScaler)",
    "lr": "a lower learning_rate_init (now {lr:g})",
    "lr_check": "another learning_rate_init (now {lr:g})",
    "he": None,
    "glorot": None,
    "leaky": 'activation="leaky_relu"',
    "relu": 'activation="relu"',
    "cost": None,
    "clip": None,
}


def run_fixes(cfg):
    """RUN_FIXES less those the config has already taken."""
    m, taken = cfg.model, set()
    taken |= {"he"} if m.init == "he" else {"glorot"} if m.init == "glorot" else set()
    taken |= {"leaky"} if m.hidden == "leaky_relu" else {"relu"} if m.hidden == "relu" else set()
    taken |= {"scale"} if cfg.data.standardize else set()
    taken |= {"clip"} if cfg.optimizer.clip_norm else set()
    taken |= {"cost"} if m.cost == "cross_entropy" else set()
    return {k: None if k in taken else v for k, v in RUN_FIXES.items()}


class Health:
    """The checks of one training run. X, Y: the training inputs (scaled, as
    the network is fed) and one-hot targets on the device; only their first
    `rows` rows are used. fixes: RUN_FIXES (or run_fixes(cfg)) or
    ESTIMATOR_FIXES; lr: the learning rate the advice quotes; flat_epochs: how
    many epochs a flat loss may last. backprop=True: each epoch's check runs a
    backward pass over the probe for the gradient norms (else the caller
    passes them); accuracy=True: the probe's accuracy stands in for a
    training accuracy the caller does not have.

    After each check, `figures` holds the epoch's figures (a flat dict for
    history rows and TensorBoard) and `messages` every message said so far."""

    def __init__(self, net, X, Y, *, fixes=RUN_FIXES, lr=0.0, rows=PROBE_ROWS, backprop=False, accuracy=False,
                 flat_epochs=FLAT_EPOCHS):
        n = min(rows, X.shape[0])
        self.net, self.X, self.Y, self.n = net, X[:n], Y[:n], n
        self.fixes, self.lr, self.backprop, self.accuracy, self.flat_epochs = fixes, lr, backprop, accuracy, flat_epochs
        self.figures, self.messages, self.inputs_figures = {}, [], {}
        self._said, self._prev_norms = set(), None

    # -- speaking ----------------------------------------------------------------------------
    def _fix(self, *keys):
        fixes = [self.fixes[k].format(lr=self.lr) for k in keys if self.fixes.get(k)]
        return f"; try {' or '.join(fixes)}" if fixes else ""

    def _say(self, key, text, *fixes):
        """The message, the first time `key` (check, layer) comes up; else nothing."""
        if key in self._said:
            return []
        self._said.add(key)
        self.messages.append(f"health: {text}{self._fix(*fixes)}")
        return [self.messages[-1]]

    # -- once, before training ----------------------------------------------------------------
    def inputs(self, max_abs, *, constant=False, rows=0, standardized=False, limit=INPUT_MAX):
        """Messages about the training inputs. max_abs: the largest |x| the
        network is fed; constant: every feature takes one value over the
        `rows` training rows. Standardised inputs are not checked for their
        range: a rare feature's standardised values reach sqrt(rows). limit:
        the largest max_abs that is not reported."""
        self.inputs_figures = {"input_max_abs": float(max_abs)}
        said = []
        if constant and rows > 1:
            said += self._say(("inputs", "constant"), f"every input feature is constant over the {rows} training rows: "
                              "there is nothing to learn from; check the data file")
        if not standardized and max_abs > limit:
            said += self._say(("inputs", "scale"), f"the training inputs reach |x| = {max_abs:.2g} as the network is fed "
                              "(it expects values of about 1): unscaled inputs saturate or kill units", "scale")
        return said

    # -- per epoch -----------------------------------------------------------------------------
    def epoch(self, losses, accuracy=None, grad_norms=None, n_classes=None):
        """New messages for the epoch just trained. losses: the training loss
        of every epoch so far (this one last); accuracy: this epoch's training
        accuracy (or None: the probe's, when made with accuracy=True);
        grad_norms: this epoch's ‖∂C/∂W^l‖ per layer (None: from the probe
        when backprop=True, else no gradient checks)."""
        net, xp = self.net, self.net.xp
        if self.backprop:
            net.gradient(self.X, self.Y, dropout=False)
        else:
            net.forward(self.X)
        rows = net.buffers(self.n, train=self.backprop).rows(self.n)
        hidden, L = net.hidden, net.n_layers  # how it fails is the record's (nn/activations.py)
        names, values = [], []
        for l in range(L - 1):
            z, a = rows.z[l], rows.a[l]
            if hidden.health == "dies":  # σ(z) > 0 exactly when z > 0
                names.append(f"dead_units_{l + 1}")
                values.append(1.0 - (a > 0).any(axis=0).mean())
            elif hidden.health == "saturates":
                names.append(f"saturated_units_{l + 1}")
                values.append(((hidden.prime(z, a) < FLAT_SLOPE).mean(axis=0) >= SATURATED_ROWS).mean())
        z, out = rows.z[L - 1], rows.a[L - 1]
        if _slows_down(net):
            names.append("output_saturated_wrong")
            values.append(((net.output.prime(z, out) < FLAT_SLOPE) & (xp.abs(out - self.Y) > 0.5)).mean())
        if accuracy is None and self.accuracy:
            names.append("probe_accuracy")
            values.append(_accuracy(out, self.Y))
        if grad_norms is None and self.backprop:
            names += [f"grad_norm_w{l + 1}" for l in range(L)]
            values += [xp.sqrt((g * g).sum()) for g in net.grad_weights]
        names.append("finite")
        values.append(xp.isfinite(out).all())
        host = net.bk.to_numpy(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]))  # the one transfer
        fig = {k: float(v) for k, v in zip(names, host)}
        if not fig.pop("finite"):  # about to diverge: that path speaks, not this one
            self.figures = {}
            return []
        if grad_norms is None and self.backprop:
            grad_norms = [fig.pop(f"grad_norm_w{l + 1}") for l in range(L)]
        if accuracy is None:
            accuracy = fig.pop("probe_accuracy", None)
        said = self._layers(fig)
        if grad_norms is not None:
            said += self._gradients(fig, grad_norms, losses)
        said += self._learning(losses, accuracy, n_classes or net.sizes[-1])
        self.figures = fig
        return said

    def _layers(self, fig):
        net, said = self.net, []
        for l in range(net.n_layers - 1 if self.n >= MIN_ROWS else 0):
            units, name = net.sizes[l + 1], net.hidden_name
            if units < MIN_UNITS:
                continue
            where = f"layer {l + 1} ({name}, {units} units)"
            dead, sat = fig.get(f"dead_units_{l + 1}"), fig.get(f"saturated_units_{l + 1}")
            if dead is not None and dead >= DEAD:
                said += self._say(("dead", l), f"{where}: {dead:.0%} of the units never activate on {self.n} training rows "
                                  "(dead ReLUs pass no gradient)", "lr", "he", "leaky", "scale")
            if sat is not None and sat >= SATURATED:
                said += self._say(("saturated", l), f"{where}: {sat:.0%} of the units are saturated (σ'(z) < {FLAT_SLOPE} "
                                  f"on {SATURATED_ROWS:.0%} of {self.n} training rows), so they barely learn",
                                  "glorot", "scale", "relu")
        wrong = fig.get("output_saturated_wrong")
        if wrong is not None and wrong >= WRONG:
            net = self.net
            said += self._say(("slowdown", None), f"output layer ({net.output_name}, {net.cost_name} cost): {wrong:.0%} of "
                              "the outputs are saturated at the wrong value, where BP1's factor σ'(z) all but stops "
                              "learning", "cost")
        return said

    def _gradients(self, fig, norms, losses):
        said, prev = [], self._prev_norms
        init = ("he",) if self.net.hidden.health == "dies" else ("relu", "glorot")
        self._prev_norms = norms
        top = max(norms)
        fig["grad_ratio"] = top / min(norms) if min(norms) > 0 else None
        growth = [b / a for a, b in zip(prev, norms) if a > 0] if prev is not None else []
        fig["grad_growth"] = max(growth) if growth else None
        if len(losses) > 1 and not losses[-1] > 0.01 * losses[0]:
            return said  # the loss is ~0 already: small gradients mean it has learnt
        if top == 0:
            said += self._say(("vanishing", None), "every layer's weight gradient ‖∂C/∂W‖ is exactly 0: no weight learns",
                              "scale", *init)
        elif fig["grad_ratio"] is None or fig["grad_ratio"] > GRAD_RATIO:
            low = min(range(len(norms)), key=norms.__getitem__)
            high = norms.index(top)
            ratio = "" if fig["grad_ratio"] is None else f", a ratio of {fig['grad_ratio']:.1g}"
            said += self._say(("vanishing", None), f"vanishing gradients: ‖∂C/∂W‖ is {norms[low]:.2g} in layer {low + 1} "
                              f"but {norms[high]:.2g} in layer {high + 1}{ratio}, so layer {low + 1} barely learns", *init)
        if fig["grad_growth"] is not None and fig["grad_growth"] > GRAD_GROWTH:
            l = max((i for i in range(len(norms)) if prev[i] > 0), key=lambda i: norms[i] / prev[i])
            said += self._say(("exploding", None), f"exploding gradients: ‖∂C/∂W‖ of layer {l + 1} grew "
                              f"{norms[l] / prev[l]:.2g}× in one epoch (to {norms[l]:.2g})", "lr", "clip")
        return said

    def _learning(self, losses, accuracy, n_classes):
        if len(losses) < self.flat_epochs or accuracy is None:
            return []
        first, last = losses[0], losses[-1]
        chance = 1.0 / max(2, n_classes)  # one logistic unit: two classes
        if abs(last - first) <= FLAT_LOSS * abs(first) and accuracy <= chance + min(chance, 0.1):
            return self._say(("learning", None), f"not learning: after {len(losses)} epochs the training loss is "
                             f"{last:.4g} (epoch 1: {first:.4g}) and the accuracy {accuracy:.1%} (chance: {chance:.0%}); "
                             "check that the labels match the inputs", "lr_check")
        return []


def _slows_down(net):
    """BP1's learning slowdown: a saturating output whose cost keeps σ'(z^L) in δ^L (the quadratic)."""
    return net.output.health == "saturates" and net.cost.delta_kernel == "(a - y) σ'"


def _accuracy(out, Y):
    if out.shape[1] == 1:  # one logistic unit: a binary classifier
        return ((out > 0.5) == (Y > 0.5)).mean()
    return (out.argmax(axis=1) == Y.argmax(axis=1)).mean()


def input_figures(bk, X, scale=1.0):
    """For Health.inputs, from a device array of raw inputs: (max |x| as the
    network is fed, whether every feature is constant), reduced on the device
    and brought to the host in one transfer."""
    xp = bk.xp
    values = [xp.abs(X).max(), (X.max(axis=0) == X.min(axis=0)).all()]
    host = bk.to_numpy(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]))
    return float(host[0]) * float(scale), bool(host[1])

"""`sol.optimize` and `SolModule`: a torch.nn.Module whose forward runs SOL.

The framework owns the parameters: SolModule holds the model's own submodules
and tensors under the model's names (so state_dict keys match and
load_state_dict works), and hands their memory to the compiled model by
pointer on every call. SOL never bakes weights into what it compiles; values it
derives from parameters (e.g. folded BatchNorm) are recomputed when the
parameters' fingerprint changes.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from sol import device as sol_device
from sol._loader import core
from sol._logging import logger
from sol.errors import UnsupportedError
from sol.pytorch.frontend import SEED_INPUT, behaves_per_mode, build_graph, flatten_outputs, torch_dtype, trace
from sol.pytorch import tensor_reader
from sol.pytorch.random import next_seed

__all__ = ["optimize", "SolModule"]

# dtypes SOL compiles today; widen as the core learns more.
SUPPORTED_DTYPES = (torch.float32,)

# Where tensors must live for each SOL device (a torch device type).
# Keyed by the Device itself: reading an enum's .name costs more than the rest of the lookup.
_TORCH_DEVICE_TYPES = {sol_device.x86: "cpu", sol_device.arm64: "cpu", sol_device.nvidia: "cuda", sol_device.ve: "ve"}
_HOST = torch.device("cpu")

Shapes = tuple[tuple[int, ...], ...]


class _Registrations:
    """Counts writes into the `_parameters`, `_buffers` and `_modules` dictionaries of the
    optimized model's modules (made _WatchedDicts by SolModule; `module.weight = nn.Parameter(...)`,
    a replaced submodule, `load_state_dict(assign=True)`, `Module._apply` and
    `torch.func.functional_call` all write there). While the count is unchanged, the tensors a
    compiled model reads are those it resolved last: a call then reads only their pointers and
    version counters, not every owner's dictionaries. (That matters: after a call has streamed the
    weights through the caches, each dictionary read is a cache miss, and MobileNetV2 has 262
    parameter tensors.)"""

    _numbers = itertools.count(1)
    count = 0

    @staticmethod
    def note() -> None:
        # next() on an itertools.count is atomic: concurrent writers never share a number.
        _Registrations.count = next(_Registrations._numbers)


class _WatchedDict(dict):
    """A module's parameter, buffer or submodule dictionary that counts its writes (after making
    them: a reader resolving in between sees the new value, then resolves again)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        _Registrations.note()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        _Registrations.note()

    def __ior__(self, other: Any) -> "_WatchedDict":
        self.update(other)
        return self

    def _changed(method):  # noqa: N805  (wraps the other mutating methods)
        def wrapper(self, *args: Any, **kwargs: Any) -> Any:
            result = method(self, *args, **kwargs)
            _Registrations.note()
            return result

        return wrapper

    pop = _changed(dict.pop)
    popitem = _changed(dict.popitem)
    clear = _changed(dict.clear)
    update = _changed(dict.update)
    setdefault = _changed(dict.setdefault)
    del _changed


def _watch(root: torch.nn.Module) -> None:
    """Makes the dictionaries of `root` and every module under it _WatchedDicts (idempotent)."""
    for module in root.modules():
        for name in ("_parameters", "_buffers", "_modules"):
            table = module.__dict__.get(name)
            if table is not None and not isinstance(table, _WatchedDict):
                module.__dict__[name] = _WatchedDict(table)


@dataclass
class _Compiled:
    """One compiled model (one input shape set on one device) and its runtime state."""

    model: Any  # sol._core.CompiledModel
    parameter_names: list[str]  # copied once: the binding builds a new list per attribute read
    parameter_shapes: list[tuple[int, ...]]  # what each parameter's shape must stay
    input_order: list[int]  # forward() argument index per compiled.input_names
    output_shapes: list[list[int]]
    output_dtypes: list[torch.dtype]
    # Outputs [model_outputs, model_outputs + len(state_names)) are new values of these buffers
    # (training-mode BatchNorm statistics); `counters` grow by one per call.
    model_outputs: int = 0
    state_names: list[str] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)
    # (storage, key, counted) per parameter_names (see SolModule._slot), and the tensors found
    # there when _Registrations.count was `resolved_at`; -1: not resolved yet.
    parameter_slots: list[tuple[dict[str, Any], str, bool]] = field(default_factory=list)
    resolved: list[Any] = field(default_factory=list)
    resolved_at: int = -1
    # Positions of slots whose writes nothing counts (plain tensor attributes): read per call.
    uncounted: list[int] = field(default_factory=list)
    # Identity, memory and in-place version of the parameters at the last call (sol._core.
    # TensorFingerprint); forget() it to derive values anew.
    fingerprint: Any = field(default_factory=lambda: core().TensorFingerprint())
    # Whether an input has no elements (then the runtime is not called); known at the first call,
    # since an entry serves one shape set.
    empty_inputs: bool | None = None
    # The tensors handed to the runtime at the last change, and their pointers (a
    # sol._core.PointerList, converted once).
    parameters: list[torch.Tensor] = field(default_factory=list)
    parameter_pointers: Any = None
    # Held while a call recomputes parameter-derived values, so concurrent calls
    # never read them half-written.
    refresh_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _TrainingPair:
    """The two compiled models of a training step (passes/autodiff): `forward` returns the model's
    outputs, then the activations `backward` reads; `backward` takes the output gradients and those
    activations and returns the gradients named in `gradient_of`."""

    forward: _Compiled
    backward: _Compiled
    model_outputs: int
    gradient_of: list[str]
    # Per backward input: ("grad", k) the gradient of model output k, ("saved", k) forward output k,
    # ("input", i) forward() argument i.
    backward_sources: list[tuple[str, int]]


class _Engine:
    """SolModule's non-Module state. Kept in a plain object so nn.Module does not
    register the fx GraphModule (its parameters would appear twice in state_dict)."""

    def __init__(self, graph_module: fx.GraphModule, dtype: torch.dtype, input_names: list[str], ranks: list[int],
                 autotuning: bool = True, train_graph_module: fx.GraphModule | None = None,
                 train_trace_error: UnsupportedError | None = None):
        # The model traced in eval mode, and in train mode where that traces differently: Python
        # evaluates `self.training` while tracing, so `F.dropout(x, training=self.training)` or a
        # branch on it (GoogLeNet's auxiliary outputs) is fixed per trace. None with the error
        # when only the eval trace succeeded.
        self.graph_module = graph_module
        self.train_graph_module = train_graph_module
        self.train_trace_error = train_trace_error
        self.dtype = dtype
        self.autotuning = autotuning
        self.input_names = input_names
        self.ranks = ranks
        self.output_spec = flatten_outputs(graph_module)[1]
        self.train_output_spec = flatten_outputs(train_graph_module)[1] if train_graph_module is not None else None
        # Graphs are built and cached per mode where the modes may differ at all: the traces
        # differ, or a node reads the mode (a literal F.dropout(x, p), training=True, traces
        # alike in both modes but is random in training only).
        self.mode_dependent = train_graph_module is not graph_module or behaves_per_mode(graph_module)
        self.compiled: dict[tuple, _Compiled] = {}
        self.lock = threading.Lock()
        # (name, storage, key) of every parameter, resolved when _Registrations.count was
        # `slots_resolved_at` (see SolModule._slot): asking each call which ones require grad must
        # not walk the module tree (130 us for resnet50).
        self.parameter_slots: list[tuple[str, dict[str, Any], str]] = []
        self.slots_resolved_at = -1

    def __deepcopy__(self, memo: dict) -> "_Engine":
        # Deep-copying a SolModule: the memo maps the GraphModule's leaf modules to
        # the same copies as the SolModule's children. Compiled models stay behind
        # (they hold runtime state); the copy compiles on first use.
        graph_module = copy.deepcopy(self.graph_module, memo)
        train_graph_module = (graph_module if self.train_graph_module is self.graph_module
                              else copy.deepcopy(self.train_graph_module, memo))
        return _Engine(graph_module, self.dtype, self.input_names, self.ranks, self.autotuning, train_graph_module,
                       self.train_trace_error)

    def graph_module_for(self, training: bool) -> fx.GraphModule:
        """The trace whose Python-level `self.training` decisions match the mode."""
        if not training:
            return self.graph_module
        if self.train_graph_module is None:
            raise UnsupportedError(f"the model cannot run in training mode (call .eval() on it for inference): "
                                   f"tracing it in train mode failed: {self.train_trace_error}")
        return self.train_graph_module

    def output_spec_for(self, training: bool) -> pytree.TreeSpec:
        return self.train_output_spec if training and self.train_output_spec is not None else self.output_spec


def _format_shapes(shapes: Shapes) -> str:
    return ", ".join(str(list(shape)) for shape in shapes)


class SolModule(torch.nn.Module):
    """A model optimized by SOL. Create it with `sol.optimize`."""

    def __init__(self, model: torch.nn.Module, graph_module: fx.GraphModule, dtype: torch.dtype, ranks: list[int],
                 autotuning: bool = True, train_graph_module: fx.GraphModule | None = None,
                 train_trace_error: UnsupportedError | None = None):
        super().__init__()
        # The model's own children and root tensors, under their own names: the
        # state_dict of this module is the model's state_dict.
        for name, child in model._modules.items():
            self.add_module(name, child)
        for name, parameter in model._parameters.items():
            self.register_parameter(name, parameter)
        for name, buffer in model._buffers.items():
            self.register_buffer(name, buffer, persistent=name not in model._non_persistent_buffers_set)
        # Tensor constants fx lifted onto the GraphModule root (`_tensor_constant0`)
        # are not the model's state; keep them as non-persistent buffers.
        for traced in (graph_module, train_graph_module):
            for node in traced.graph.nodes if traced is not None else []:
                if node.op == "get_attr" and "." not in str(node.target) and not hasattr(self, str(node.target)):
                    value = getattr(traced, str(node.target))
                    if isinstance(value, torch.Tensor):
                        self.register_buffer(str(node.target), value, persistent=False)
        _watch(self)  # writes into the modules' dictionaries are counted (see _Registrations)
        # Only this module's own flag: the children keep theirs (a frozen BatchNorm stays in eval).
        self.training = model.training
        names = [str(node.target) for node in graph_module.graph.nodes if node.op == "placeholder"]
        self._sol = _Engine(graph_module, dtype, names[: len(ranks)], ranks, autotuning, train_graph_module,
                            train_trace_error)

    # ---------------------------------------------------------------- compile

    def _mode(self, training: bool | None = None) -> str:
        """The train/eval behaviour graphs are built with (default: the current one): one per
        mode where the modes may differ (see _Engine.mode_dependent)."""
        training = self.training if training is None else training
        return ("train" if training else "eval") if self._sol.mode_dependent else "any"

    def _compiled_for(self, shapes: Shapes, device: sol_device.Device, index: int) -> _Compiled:
        """The compiled model for this shape set, mode and device; caller holds the lock."""
        engine = self._sol
        key = (shapes, engine.dtype, device, index, self._mode())
        entry = engine.compiled.get(key)
        if entry is None:
            if not engine.compiled:  # the shapes given to optimize(): errors as they are
                entry = self._compile(shapes, device, index)
            else:
                entry = self._compile_other_shape(shapes, device, index)
            engine.compiled[key] = entry
        return entry

    def _compile_other_shape(self, shapes: Shapes, device: sol_device.Device, index: int) -> _Compiled:
        """Compile for shapes first seen in forward(). A failure names the new
        shapes beside the ones optimize() was given, since the user did not ask
        for a rebuild and the core's message only shows op-level shapes."""
        try:
            return self._compile(shapes, device, index)
        except (core().ShapeError, UnsupportedError) as error:
            first = next(iter(self._sol.compiled))[0]
            raise type(error)(
                f"the SOL model cannot take inputs of shape {_format_shapes(shapes)} "
                f"(it was optimized for {_format_shapes(first)}): {error}"
            ) from error

    def _compile(self, shapes: Shapes, device: sol_device.Device, index: int) -> _Compiled:
        engine = self._sol
        logger.debug("building %s for inputs %s on %s:%d", type(engine.graph_module).__name__, shapes, device.name, index)
        built = build_graph(engine.graph_module_for(self.training), shapes, [engine.dtype] * len(shapes),
                            training=self.training)
        entry = self._entry(core().run_passes(built.graph), built.parameter_names, device, index)
        entry.model_outputs, entry.state_names, entry.counters = built.model_outputs, built.state_names, built.counters
        return entry

    def _entry(self, graph: Any, parameter_names: list[str], device: sol_device.Device, index: int,
               input_names: list[str] | None = None, training_step: bool = False) -> _Compiled:
        """Compile an optimized graph. `input_names`: what the graph's inputs may be named (default:
        forward()'s arguments); input_order then indexes that list. `training_step`: the weights
        change before every call, so no reordered copies of them are kept between calls."""
        engine = self._sol
        tensor_reader.ensure_installed()  # before the first call checks the parameters
        model = core().compile(graph, device.name, index, engine.autotuning, torch.get_num_threads(),
                               weights_change_every_call=training_step)
        logger.debug("compiled for %s:%d in the %s layout: %s", device.name, index, model.layout, model.source_path)
        known_inputs = engine.input_names + [SEED_INPUT] if input_names is None else input_names
        unknown = [name for name in model.parameter_names if name not in parameter_names]
        if unknown:
            raise RuntimeError(f"SOL internal error: the compiled model asks for unknown parameters {unknown}")
        missing_inputs = [name for name in model.input_names if name not in known_inputs]
        if missing_inputs:
            raise RuntimeError(f"SOL internal error: the compiled model asks for unknown inputs {missing_inputs}")
        return _Compiled(
            model=model,
            parameter_names=list(model.parameter_names),
            parameter_shapes=[tuple(shape) for shape in model.parameter_shapes],
            input_order=[known_inputs.index(name) for name in model.input_names],
            output_shapes=[list(shape) for shape in model.output_shapes],
            output_dtypes=[torch_dtype(name) for name in model.output_dtypes],
            model_outputs=len(model.output_shapes),
        )

    def _training_pair_for(self, shapes: Shapes, wrt: tuple[str, ...], device: sol_device.Device,
                           index: int, training: bool) -> _TrainingPair:
        """The compiled forward and backward models for this shape set, mode and gradient set;
        caller holds the lock."""
        engine = self._sol
        key = ("train", shapes, engine.dtype, device, index, self._mode(training), wrt)
        pair = engine.compiled.get(key)
        if pair is None:
            if self._mode(training) != self._mode():  # graphs are built with the modules' current flags
                raise RuntimeError("the SOL model was switched between train() and eval() after its forward pass "
                                   "and before backward(); call backward() first")
            built = build_graph(engine.graph_module_for(training), shapes, [engine.dtype] * len(shapes),
                                training=training)
            parameter_names = built.parameter_names
            # Parameters the traced graph never reads get no gradient (None), as in PyTorch.
            used = [name for name in wrt if name in parameter_names or name in engine.input_names]
            try:
                forward, backward, _, gradient_of = core().run_training_passes(built.graph, used, built.model_outputs)
            except core().Error as error:
                raise UnsupportedError(str(error)) from None
            forward_entry = self._entry(forward, parameter_names, device, index, training_step=True)
            forward_entry.model_outputs = built.model_outputs
            forward_entry.state_names, forward_entry.counters = built.state_names, built.counters
            saved_names = [f"saved:{k}" for k in range(len(forward_entry.output_shapes))]
            grad_names = [f"grad:{k}" for k in range(built.model_outputs)]
            backward_entry = self._entry(backward, parameter_names, device, index,
                                         input_names=grad_names + saved_names + engine.input_names + [SEED_INPUT],
                                         training_step=True)
            sources = []
            for position in backward_entry.input_order:
                if position < len(grad_names):
                    sources.append(("grad", position))
                elif position < len(grad_names) + len(saved_names):
                    sources.append(("saved", position - len(grad_names)))
                else:
                    sources.append(("input", position - len(grad_names) - len(saved_names)))
            pair = _TrainingPair(forward_entry, backward_entry, built.model_outputs, list(gradient_of), sources)
            engine.compiled[key] = pair
        return pair

    def _slot(self, name: str) -> tuple[dict[str, Any], str, bool]:
        """Where parameter `name` lives: its owner's `_parameters`, `_buffers` or `__dict__`, the
        key, and whether a write there is counted (see _Registrations: true for parameters and
        buffers). Resolved again after any counted write, so `module.weight = nn.Parameter(...)`
        and a replaced submodule are honoured; reading the dict directly is much cheaper than
        nn.Module.__getattr__."""
        owner_path, _, attribute = name.rpartition(".")
        owner = self.get_submodule(owner_path) if owner_path else self
        for storage in (owner._parameters, owner._buffers):
            if attribute in storage:
                return storage, attribute, isinstance(storage, _WatchedDict)
        if attribute in owner.__dict__:
            return owner.__dict__, attribute, False
        raise RuntimeError(f"SOL model parameter {name!r} is not an attribute of {type(owner).__name__}")

    def _parameters_of(self, entry: _Compiled) -> list[Any]:
        """The tensors `entry` reads, in its parameter order; caller holds the engine lock."""
        if entry.resolved_at != _Registrations.count:
            # The count first (a write meanwhile makes the next call resolve again); the new state
            # published only once resolved (if _slot raises, the next call tries again).
            count = _Registrations.count
            _watch(self)  # submodules put in since
            slots = [self._slot(name) for name in entry.parameter_names]
            entry.parameter_slots = slots
            entry.resolved = [storage.get(key) for storage, key, _ in slots]
            entry.uncounted = [i for i, (_, _, counted) in enumerate(slots) if not counted]
            entry.resolved_at = count
        if not entry.uncounted:
            return entry.resolved
        current = list(entry.resolved)
        for i in entry.uncounted:
            storage, key, _ = entry.parameter_slots[i]
            current[i] = storage.get(key)
        return current

    # ---------------------------------------------------------------- run

    def _check_input(self, position: int, value: Any, device_type: str, device: sol_device.Device) -> torch.Tensor:
        engine = self._sol
        if (type(value) is torch.Tensor and value.dtype is engine.dtype and value.is_cpu and device_type == "cpu"
                and value.dim() == engine.ranks[position] and value.is_contiguous()):
            return value  # the common case, in as few reads as it takes
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"input {position} must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != engine.dtype:
            raise TypeError(f"input {position} has dtype {value.dtype}, but the SOL model expects {engine.dtype}")
        if value.device.type != device_type:
            raise core().DeviceError(
                f"input {position} is on {value.device}, but SOL runs on {device.name}, which needs "
                f"{device_type} tensors (move the input, or select another device with sol.device.set)"
            )
        if value.dim() != engine.ranks[position]:
            raise core().ShapeError(
                f"input {position} has shape {list(value.shape)} (rank {value.dim()}), but the SOL model "
                f"was optimized for rank-{engine.ranks[position]} inputs"
            )
        return value.contiguous()  # no copy when already contiguous

    def _hand_over(self, entry: _Compiled, tensors: list[Any], device_type: str) -> None:
        """Validate the parameters and keep what the runtime reads (contiguous
        copies where needed) alive in the entry until they change again."""
        dtype = self._sol.dtype
        handed = []
        for name, shape, tensor in zip(entry.parameter_names, entry.parameter_shapes, tensors):
            if (not isinstance(tensor, torch.Tensor) or tensor.dtype != dtype or tensor.device.type != device_type
                    or tuple(tensor.shape) != shape):
                self._raise_parameter_error(name, shape, tensor, device_type)
            handed.append(tensor if tensor.is_contiguous() else tensor.contiguous())
        entry.parameters = handed
        entry.parameter_pointers = core().PointerList([tensor.data_ptr() for tensor in handed])

    def _raise_parameter_error(self, name: str, shape: tuple[int, ...], tensor: Any, device_type: str) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise RuntimeError(f"SOL model parameter {name!r} is {type(tensor).__name__}, not a tensor")
        if tensor.dtype != self._sol.dtype:
            raise TypeError(f"parameter {name!r} has dtype {tensor.dtype}, but the SOL model expects {self._sol.dtype}")
        if tuple(tensor.shape) != shape:
            raise core().ShapeError(f"parameter {name!r} has shape {list(tensor.shape)}, but the SOL model was "
                                    f"optimized for {list(shape)} (optimize the changed model again)")
        raise core().DeviceError(f"parameter {name!r} is on {tensor.device}, but SOL needs {device_type} tensors")

    def forward(self, *inputs: torch.Tensor) -> Any:
        engine = self._sol
        if len(inputs) != len(engine.ranks):
            raise TypeError(f"the SOL model takes {len(engine.ranks)} input(s), got {len(inputs)}")
        device, index = sol_device.get()
        device_type = _TORCH_DEVICE_TYPES[device]
        tensors = [self._check_input(i, value, device_type, device) for i, value in enumerate(inputs)]
        shapes: Shapes = tuple([tuple(tensor.shape) for tensor in tensors])
        training = self.training
        # The call's random seed rides along as the last input (read by training-mode dropout,
        # which only graphs built per mode hold).
        seed = torch.tensor(next_seed(), dtype=torch.int64) if training and engine.mode_dependent else None
        output_spec = engine.output_spec_for(training)
        wrt, parameters = self._gradient_names(tensors) if torch.is_grad_enabled() else ((), [])
        if wrt:
            # Training mode runs the forward graph that keeps the activations. In eval mode a
            # call with autograd on is mostly inference without no_grad: it runs the inference
            # graph, and only a backward() through it recomputes the activations.
            step = _GradientStep(shapes, wrt, device, index, device_type, training)
            names = wrt[: len(parameters)]
            inputs = tensors + [seed if seed is not None else torch.zeros((), dtype=torch.int64)]
            outputs = _TrainingStep.apply(self, step, len(inputs), names, *inputs, *parameters)
            return pytree.tree_unflatten(list(outputs), output_spec)
        # Read without the lock first (a dict lookup is atomic): inference calls mostly find one.
        entry = engine.compiled.get((shapes, engine.dtype, device, index, self._mode(training)))
        if entry is None:
            with engine.lock:
                entry = self._compiled_for(shapes, device, index)
        if seed is not None:
            tensors = tensors + [seed]
        outputs = self._run(entry, [tensors[i] for i in entry.input_order], device_type)
        if entry.state_names or entry.counters:
            self._update_state(entry, outputs)
        if output_spec.is_leaf():
            return outputs[0]
        return pytree.tree_unflatten(outputs[: entry.model_outputs], output_spec)

    def _update_state(self, entry: _Compiled, outputs: list[torch.Tensor]) -> None:
        """Buffers a training-mode call updates (BatchNorm's running statistics), as PyTorch does."""
        with torch.no_grad():
            for k, name in enumerate(entry.state_names):
                self.get_buffer(name).copy_(outputs[entry.model_outputs + k])
            for name in entry.counters:
                self.get_buffer(name).add_(1)

    def _gradient_names(self, tensors: list[torch.Tensor]) -> tuple[tuple[str, ...], list[torch.Tensor]]:
        """Parameters and inputs autograd wants gradients for on this call, parameters first, and
        those parameters. Asked only with autograd on: under no_grad or inference_mode there are
        none, and no activations are kept either."""
        engine = self._sol
        if engine.slots_resolved_at != _Registrations.count:
            count = _Registrations.count  # as in _parameters_of: other threads see the old state or the new
            engine.parameter_slots = [(name, *self._slot(name)[:2]) for name, _ in self.named_parameters()]
            engine.slots_resolved_at = count
        names, parameters = [], []
        for name, storage, key in engine.parameter_slots:
            parameter = storage.get(key)
            if parameter is not None and parameter.requires_grad:
                names.append(name)
                parameters.append(parameter)
        names += [self._sol.input_names[i] for i, tensor in enumerate(tensors) if tensor.requires_grad]
        return tuple(names), parameters

    def _run(self, entry: _Compiled, inputs: list[torch.Tensor], device_type: str) -> list[torch.Tensor]:
        """Run one compiled model on `inputs` (in the model's input order) and return its outputs.
        Parameters are handed over again only when they changed since the last call."""
        engine = self._sol
        with engine.lock:
            current = self._parameters_of(entry)
            # Identity, memory and in-place version of each tensor: any change means the runtime
            # must re-read them and recompute what it derived from them.
            changed = entry.fingerprint.changed(current)
            if changed:
                # Only changed parameters are validated again: the fast path is the fingerprint.
                try:
                    with torch.no_grad():  # contiguous copies of parameters are not part of any graph
                        self._hand_over(entry, current, device_type)
                except BaseException:
                    entry.fingerprint.forget()  # validated again next time
                    raise
                entry.refresh_lock.acquire()  # taken under engine.lock: no call slips in between
            # Local references: keep the handed-over tensors (possibly contiguous
            # copies) alive through run() even if another thread replaces them.
            parameters, parameter_pointers = entry.parameters, entry.parameter_pointers
        device = _HOST if device_type == "cpu" else inputs[0].device
        # Sizes unpacked: torch.empty parses separate ints faster than a sequence (a scalar has none).
        outputs = [torch.empty(*shape, dtype=dtype, device=device) if shape else torch.empty((), dtype=dtype, device=device)
                   for shape, dtype in zip(entry.output_shapes, entry.output_dtypes)]
        if entry.empty_inputs is None:
            entry.empty_inputs = any(tensor.numel() == 0 for tensor in inputs)
        if entry.empty_inputs:
            # Batch 0 is legal in PyTorch. Empty tensors have no memory to point at,
            # so the runtime is not called; there is nothing to compute.
            if changed:
                entry.fingerprint.forget()
                entry.refresh_lock.release()
            if all(output.numel() == 0 for output in outputs):
                return outputs
            raise core().ShapeError(
                f"the SOL model got empty inputs of shape {_format_shapes(tuple(tuple(t.shape) for t in inputs))} "
                f"but would produce non-empty outputs {[list(o.shape) for o in outputs]}"
            )
        input_pointers = [tensor.data_ptr() for tensor in inputs]
        output_pointers = [tensor.data_ptr() for tensor in outputs]
        # torch.set_num_threads governs SOL's kernels too.
        threads = torch.get_num_threads()
        if changed:
            try:
                entry.model.run(input_pointers, parameter_pointers, output_pointers, True, threads)
            except BaseException:
                entry.fingerprint.forget()  # derived values may be half-written: recompute next time
                raise
            finally:
                entry.refresh_lock.release()
        else:
            if entry.refresh_lock.locked():
                # Another thread took it, under the engine lock, before this call compared the
                # fingerprint: wait until the values derived from the new parameters are written.
                with entry.refresh_lock:
                    pass
            entry.model.run(input_pointers, parameter_pointers, output_pointers, False, threads)
        del parameters  # held until here on purpose
        return outputs

    def reload_parameters(self) -> None:
        """Make the next call re-read every parameter and recompute what SOL derived from them
        (folded BatchNorm, reordered weights). Calls notice replaced tensors and modules, in-place
        updates and `weight.data = w` by themselves; this is needed only after in-place writes
        through `.data` (`weight.data.mul_(2)`), which PyTorch hides from the version counter."""
        with self._sol.lock:
            self._sol.slots_resolved_at = -1
            for compiled in self._sol.compiled.values():
                for entry in (compiled.forward, compiled.backward) if isinstance(compiled, _TrainingPair) else (compiled,):
                    entry.fingerprint.forget()
                    entry.resolved_at = -1

    def extra_repr(self) -> str:
        shapes = sorted({key[0] for key in self._sol.compiled})
        return f"sol: dtype={self._sol.dtype}, compiled for {len(shapes)} shape set(s)"


@dataclass
class _GradientStep:
    """What one call with autograd on runs: in training mode the training pair; in eval mode the
    inference model, and only a backward() compiles the pair and recomputes the activations. The
    autograd node keeps this and a weak reference to the module, not the compiled models: a
    graph outliving its model must not keep the model's native objects alive."""

    shapes: Shapes
    wrt: tuple[str, ...]
    device: sol_device.Device
    index: int
    device_type: str
    training: bool


class _TrainingStep(torch.autograd.Function):
    """SOL's forward and backward graphs as one autograd node: the forward model's extra outputs
    (activations the backward model reads) are kept on the node until backward, and the gradients
    reach the inputs and parameters it was applied to, accumulating as autograd does."""

    @staticmethod
    def forward(ctx: Any, module: SolModule, step: _GradientStep, input_count: int,
                parameter_names: tuple[str, ...], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = list(tensors[:input_count])
        ctx.module, ctx.step, ctx.input_count = weakref.ref(module), step, input_count
        ctx.parameter_names = parameter_names  # of tensors[input_count:]
        ctx.recompute = not step.training
        if ctx.recompute:  # eval mode: nothing kept but the inputs
            with module._sol.lock:
                inference = module._compiled_for(step.shapes, step.device, step.index)
            outputs = module._run(inference, [inputs[i] for i in inference.input_order], step.device_type)
            ctx.save_for_backward(*inputs)
            return tuple(outputs[: inference.model_outputs])
        with module._sol.lock:
            pair = module._training_pair_for(step.shapes, step.wrt, step.device, step.index, step.training)
        outputs = module._run(pair.forward, [inputs[i] for i in pair.forward.input_order], step.device_type)
        module._update_state(pair.forward, outputs)
        ctx.save_for_backward(*inputs, *outputs)
        return tuple(outputs[: pair.model_outputs])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *gradients: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        inputs, outputs = saved[: ctx.input_count], saved[ctx.input_count:]
        module, step = ctx.module(), ctx.step
        if module is None:
            raise RuntimeError("the SOL model was deleted before backward() reached it")
        with module._sol.lock:  # the pair of the mode the forward ran in
            pair = module._training_pair_for(step.shapes, step.wrt, step.device, step.index, step.training)
        if ctx.recompute:
            outputs = module._run(pair.forward, [inputs[i] for i in pair.forward.input_order], step.device_type)
        backward_inputs = []
        for kind, k in pair.backward_sources:
            if kind == "grad":  # None: that output did not reach the loss
                gradient = gradients[k]
                backward_inputs.append(torch.zeros_like(outputs[k]) if gradient is None else gradient.contiguous())
            elif kind == "saved":
                backward_inputs.append(outputs[k])
            else:
                backward_inputs.append(inputs[k])
        results = module._run(pair.backward, backward_inputs, step.device_type)
        by_name = dict(zip(pair.gradient_of, results))
        input_names = module._sol.input_names + [SEED_INPUT]
        first = 4  # apply()'s arguments before the tensors
        input_gradients = [by_name.get(input_names[i]) if ctx.needs_input_grad[first + i] else None
                           for i in range(ctx.input_count)]
        return (None,) * first + (*input_gradients, *(by_name.get(name) for name in ctx.parameter_names))


# ---------------------------------------------------------------- optimize


def _is_shape(value: Any) -> bool:
    return isinstance(value, (torch.Size, tuple, list)) and all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in value
    )


def _input_specs(spec: Any) -> tuple[list[tuple[int, ...]], list[torch.dtype | None]]:
    """Shapes and (for example tensors) dtypes of the model's inputs.

    Accepts one input (a torch.Size, a tuple/list of ints, an example tensor) or a
    list/tuple of those for models with several inputs."""
    if isinstance(spec, torch.Tensor):
        return [tuple(spec.shape)], [spec.dtype]
    if _is_shape(spec):
        return [tuple(spec)], [None]
    if isinstance(spec, (tuple, list)) and spec and all(isinstance(s, torch.Tensor) or _is_shape(s) for s in spec):
        shapes, dtypes = [], []
        for item in spec:
            item_shapes, item_dtypes = _input_specs(item)
            shapes += item_shapes
            dtypes += item_dtypes
        return shapes, dtypes
    raise TypeError(
        "optimize() needs the input size (e.g. x.size() or (8, 3, 224, 224)), an example tensor, "
        f"or a list of those for several inputs; got {type(spec).__name__}"
    )


@contextlib.contextmanager
def modes_kept(model: torch.nn.Module) -> Iterator[None]:
    """Restores every submodule's own train/eval flag afterwards (a frozen BatchNorm stays in
    eval inside a model in training mode); model.train(flag) would set them all alike."""
    modes = {module: module.training for module in model.modules()}
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def optimize(
    model: torch.nn.Module,
    input_size_or_example_tensor: Any,
    dtype: torch.dtype | None = None,
    autotuning: bool = True,
) -> SolModule:
    """Return a SolModule that runs `model` with SOL on the current `sol.device`.

    The model's modules are copied and traced with torch.fx; the graph for the
    given input shape is built, optimized and compiled now, so unsupported ops,
    shape errors and compiler errors surface here. Other input shapes are
    compiled on first use. `dtype` defaults to the example tensor's dtype, else
    float32. Parameters and buffers are shared with `model`, as with
    torch.compile: no second copy of the weights, and an update through either
    module (an optimizer step, `load_state_dict`) is seen by both.

    `autotuning`: where a layer can run both in a vendor library (oneDNN) and
    in SOL's generated code, time both on this machine while compiling and
    keep the faster; where the device can lay out the network's tensors more
    than one way (channels last or channel blocks on the CPU), compile each
    and keep the one whose whole calls run faster. The choices are cached
    (per thread count), so a warm start measures nothing. False: the library
    wherever it supports the layer, and the device's default layout."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"optimize() needs a torch.nn.Module, got {type(model).__name__}")
    shapes, example_dtypes = _input_specs(input_size_or_example_tensor)
    if dtype is None:
        dtype = next((d for d in example_dtypes if d is not None), torch.float32)
    if dtype not in SUPPORTED_DTYPES:
        raise UnsupportedError(
            f"SOL supports {', '.join(map(str, SUPPORTED_DTYPES))} so far, not {dtype}"
        )

    # The memo maps every parameter and buffer to itself: the copy shares them.
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    model = copy.deepcopy(model, shared)
    training = model.training
    # Traced once per mode: `F.dropout(x, training=self.training)` and branches on
    # self.training are evaluated while tracing and baked into the graph. A model whose
    # train-mode trace fails still optimizes; training mode then raises that error.
    train_graph_module, train_trace_error = None, None
    with modes_kept(model):
        model.eval()
        graph_module = trace(model)
        model.train()
        try:
            train_graph_module = trace(model)
        except UnsupportedError as error:
            train_trace_error = UnsupportedError(str(error))  # without the tracer's frames
    if train_graph_module is not None and train_graph_module.code == graph_module.code:
        train_graph_module = graph_module  # the modes differ (if at all) in module handlers only
    logger.debug("fx graph of %s:\n%s", type(model).__name__, graph_module.graph)

    sol_module = SolModule(model, graph_module, dtype, [len(shape) for shape in shapes], autotuning,
                           train_graph_module, train_trace_error)
    device, index = sol_device.get()
    logger.debug("optimizing for %s:%d", device.name, index)
    with sol_module._sol.lock:
        sol_module._compiled_for(tuple(shapes), device, index)
    return sol_module

"""Typed surface of SOL's C++ core (the nanobind extension `sol._core`).

The framework front ends (sol.pytorch today) build a `Graph` through this
module and nothing else; the core never sees a framework object.

Tensors inside a Graph are plain integer ids. Every `add_*` call infers the
new tensor's shape and dtype at once and raises `ShapeError` naming the op, the
`origin` text and the offending shapes when the inputs do not fit.

Op vocabulary (op name -> inputs; attributes). Shapes are NCHW.
  conv2d              x, weight, [bias]          stride[2] padding[2] dilation[2] groups
  linear              x[..., K], weight[N, K], [bias[N]]
  batch_norm          x, mean, var, gamma, beta  eps   (inference statistics; gamma/beta
                                                       may be rank-0 constants 1 and 0)
  relu sigmoid tanh silu hardswish hardsigmoid neg exp log sqrt rsqrt identity
                      x
  gelu                x                          approximate (0: erf, 1: tanh)
  clamp               x                          min max   (floats; +-inf allowed)
  relu6 hardtanh      x                          (hardtanh: min max)  canonicalized to clamp
  add sub mul div     a, b                       numpy broadcasting; a rank-0 constant is a scalar
  max_pool2d          x                          kernel[2] stride[2] padding[2] dilation[2] ceil_mode
  avg_pool2d          x                          kernel[2] stride[2] padding[2] ceil_mode
                                                 count_include_pad divisor_override (0: none)
  adaptive_avg_pool2d x                          output_size[2]
  reshape             x                          shape[...] (at most one -1)
  permute             x                          dims[...]
  concat              x0, x1, ...                axis (negative counts from the end)
  slice               x                          axis start end step   (0 <= start <= end <= extent,
                                                 step >= 1; extent ceil((end-start)/step))
  mean sum            x                          axes[...] keepdim (0/1)   (sum also on integers;
                                                 mean is float only)
  softmax log_softmax x                          axis
"""

from typing import Sequence

Attr = int | float | Sequence[int] | Sequence[float]

class Error(RuntimeError): ...
class ShapeError(Error): ...
class CompileError(Error): ...
class DeviceError(Error): ...

class Graph:
    def __init__(self) -> None: ...
    def add_input(self, name: str, shape: Sequence[int], dtype: str) -> int: ...
    def add_parameter(self, name: str, shape: Sequence[int], dtype: str) -> int: ...
    def add_constant(self, value: float, dtype: str) -> int:
        """A rank-0 constant (a scalar operand such as 0.5 in `x * 0.5`)."""
    def add_op(self, op: str, inputs: Sequence[int], attrs: dict[str, Attr], origin: str) -> int:
        """Append an op; returns its output tensor id. `origin` names where it came
        from in the user's model (module path and source line) for errors and
        for comments in generated code."""
    def set_outputs(self, ids: Sequence[int]) -> None: ...
    def shape(self, id: int) -> list[int]: ...
    def dtype(self, id: int) -> str: ...
    def __str__(self) -> str: ...

def op_names() -> list[str]: ...

def run_training_passes(graph: Graph, wrt: Sequence[str], differentiable_outputs: int) -> tuple[Graph, Graph, int, list[str]]:
    """Simplify, differentiate the first `differentiable_outputs` outputs (-1: all) with respect to the
    named parameters/inputs and fuse: (forward graph whose outputs are the graph's own then the saved
    activations, backward graph whose inputs are "grad:<k>", "saved:<k>" or forward input names, number
    of the graph's own outputs, the name each backward output is the gradient of)."""

def run_passes(graph: Graph) -> Graph:
    """The optimization pipeline (verify, canonicalize, fold, fuse, ...) on a copy.
    SOL_LOG=debug prints the graph after each pass on stderr."""

class CompiledModel:
    input_names: list[str]
    parameter_names: list[str]      # order of the `parameters` pointers in run()
    parameter_shapes: list[list[int]]  # the shape each parameter must have
    output_shapes: list[list[int]]
    output_dtypes: list[str]
    source_path: str                # the generated source, for the curious
    kernel_calls: int               # steps per call
    unique_kernels: int             # distinct generated kernels (identical layers share one)
    library_calls: int              # steps run by a vendor library (oneDNN) instead of generated code
    depth_first_calls: int          # kernels computing another kernel's result inside them (depth-first fusion)
    aliased_reshapes: int           # reshapes that are no step: their output is their input's memory
    kernel_descriptions: list[str]  # every per-call step in order: "concat + mul + add + relu -> f32[...]  # origins"
    workspace_bytes: int      # per-call memory of intermediates and library scratch (planned by lifetime)
    derived_bytes: int        # kept between calls for parameter-derived values
    library_kept_bytes: int   # kept between calls by library kernels (weights in their layouts)
    layout: str               # how the device laid out the tensors between kernels ("channels_last", "blocked")
    tuned_calls: int          # library calls whose backend autotuning chose
    measured_calls: int       # of those, timed while loading (0: choices from the cache)
    profile: list[tuple[str, list[float]]]  # SOL_PROFILE=1: per step, seconds per call

    def run(self, inputs: Sequence[int], parameters: PointerList, outputs: Sequence[int],
            parameters_changed: bool, threads: int = 0) -> None:
        """Pointers (as ints; the parameters' converted once) to contiguous host memory. Releases the GIL; safe to
        call from several threads at once. `parameters_changed` tells the runtime
        to recompute values derived from parameters only (e.g. folded BatchNorm).
        `threads` > 0 sets the OpenMP threads of the kernels (SolModule passes
        torch.get_num_threads())."""

class PointerList:
    """Pointers (as ints) converted once: run() gets the same parameters call after call."""
    def __init__(self, addresses: Sequence[int]) -> None: ...
    def __len__(self) -> int: ...

class TensorFingerprint:
    """Identity, data_ptr() and _version of each tensor of a list, against the last call's:
    how SolModule notices changed parameters before every call. Read through the installed
    tensor reader where it can, else through the tensors' Python attributes."""
    def changed(self, tensors: list) -> bool:
        """Whether any tensor differs from the last call (or this is the first call, or the
        first after forget()); remembers the new state. A tensor without a readable version
        (an inference-mode tensor) counts as changed every time."""
    def forget(self) -> None: ...

def install_tensor_reader(flags: list[str], types: list[type], probes: list[tuple[object, int]]) -> str:
    """Compile (through the cache) and load the direct tensor reader, with `flags` added to the
    host compiler's (PyTorch's include and library folders); TensorFingerprint reads objects of
    exactly these types through it from now on. `probes`: (tensor, address of its TensorImpl),
    to find where the objects keep that pointer. Returns the library's path; raises CompileError
    when it does not build, Error when the pointer is not found (the reader installed before
    stays)."""

def remove_tensor_reader() -> None:
    """TensorFingerprint reads every tensor through its Python attributes again."""

def tensor_reader_path() -> str:
    """The installed tensor reader's library, or "" when none is installed."""

def compile(graph: Graph, device: str, index: int, autotuning: bool = True, threads: int = 0,
            keep_for_deployment: bool = False, weights_change_every_call: bool = False) -> CompiledModel:
    """Generate, build (through the cache) and load. `autotuning` times library
    kernels against generated code where both can run a layer and keeps the
    faster (choices cached per module and thread count), and where the device
    can lay out the network's tensors more than one way, compiles each, times
    whole calls and keeps the fastest (runtime/choose_layout.h; cached too);
    `threads` > 0 is the OpenMP thread count to measure with.
    `keep_for_deployment`: keep what deploy_shared_library needs (the lowered
    graph, the calls, the source).
    `weights_change_every_call`: the models of a training step; library kernels
    reorder weights per call instead of keeping reordered copies."""

def deploy_shared_library(model: CompiledModel, parameters: Sequence[int], lib_name: str, func_name: str,
                          directory: str, runtime_archive: str, include_directory: str,
                          build_directory: str) -> tuple[str, str]:
    """Write directory/lib<lib_name>.so and directory/<lib_name>.h (deploy/write_library.h) from a model
    compiled with keep_for_deployment; `parameters`: addresses of the values of model.parameter_names,
    contiguous on the host. Returns (library path, header path)."""

def devices() -> list[str]: ...
def cache_dir() -> str: ...
def clear_cache() -> int:
    """Removes every cached artifact; returns how many files went."""
def info() -> dict[str, str]: ...

// The Python extension `sol._core`: a thin layer over the core for the
// framework front ends (python/sol). See python/sol/_core.pyi for the
// documented surface. No framework types cross this boundary: tensors arrive
// as integer addresses of host memory (only TensorFingerprint looks at tensor
// objects: through the `data_ptr()` and `_version` attributes they have, or
// through the tensor reader compiled against the running PyTorch).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <set>

#include "sol/deploy/write_library.h"
#include "sol/devices/device.h"
#include "sol/error.h"
#include "sol/ir/print.h"
#include "sol/jit/compile_cache.h"
#include "sol/passes/pipeline.h"
#include "sol/runtime/choose_layout.h"
#include "sol/runtime/compiled_model.h"
#include "tensor_fingerprint.h"
#include "tensor_reader.h"

namespace nb = nanobind;
using namespace sol;

namespace {

constexpr const char* kVersion = "0.1.0";

ir::AttributeValue to_attribute(const std::string& key, nb::handle value) {
    if (nb::isinstance<nb::bool_>(value)) return static_cast<std::int64_t>(nb::cast<bool>(value));
    if (nb::isinstance<nb::int_>(value)) return nb::cast<std::int64_t>(value);
    if (nb::isinstance<nb::float_>(value)) return nb::cast<double>(value);
    if (nb::isinstance<nb::str>(value)) return nb::cast<std::string>(value);
    if (nb::isinstance<nb::list>(value) || nb::isinstance<nb::tuple>(value)) {
        bool any_float = false;
        for (nb::handle item : value) any_float |= nb::isinstance<nb::float_>(item);
        if (any_float) {
            std::vector<double> values;
            for (nb::handle item : value) values.push_back(nb::cast<double>(item));
            return values;
        }
        std::vector<std::int64_t> values;
        for (nb::handle item : value) values.push_back(nb::cast<std::int64_t>(item));
        return values;
    }
    throw ShapeError("attribute '" + key + "' must be an int, a float, a list of them or a string, got " +
                     nb::cast<std::string>(nb::str(value.type())));
}

ir::Attributes to_attributes(const nb::dict& attrs) {
    ir::Attributes result;
    for (auto [key, value] : attrs) {
        const std::string name = nb::cast<std::string>(key);
        result.set(name, to_attribute(name, value));
    }
    return result;
}

std::vector<void*> to_pointers(const std::vector<std::uintptr_t>& addresses) {
    std::vector<void*> pointers;
    for (std::uintptr_t address : addresses) pointers.push_back(reinterpret_cast<void*>(address));
    return pointers;
}

// Pointers passed to run() call after call (a model's parameters), converted
// from Python integers once instead of on every call.
struct PointerList {
    std::vector<void*> pointers;
};

std::vector<std::string> names_of(const std::vector<runtime::CompiledModel::TensorInfo>& tensors) {
    std::vector<std::string> names;
    for (const auto& t : tensors) names.push_back(t.name);
    return names;
}

std::vector<ir::Shape> shapes_of(const std::vector<runtime::CompiledModel::TensorInfo>& tensors) {
    std::vector<ir::Shape> shapes;
    for (const auto& t : tensors) shapes.push_back(t.shape);
    return shapes;
}

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "SOL's C++ core: graph IR, passes, code generation, JIT and runtime";
    m.attr("__version__") = kVersion;

    // Base first: nanobind tries the most recently registered translator first.
    nb::exception<Error> error(m, "Error");
    nb::exception<ShapeError>(m, "ShapeError", error);
    nb::exception<CompileError>(m, "CompileError", error);
    nb::exception<DeviceError>(m, "DeviceError", error);

    nb::class_<ir::Graph>(m, "Graph")
        .def(nb::init<>())
        .def("add_input", [](ir::Graph& g, const std::string& name, const ir::Shape& shape, const std::string& dtype) {
            return g.add_input(name, shape, ir::parse_dtype(dtype));
        })
        .def("add_parameter",
             [](ir::Graph& g, const std::string& name, const ir::Shape& shape, const std::string& dtype) {
                 return g.add_parameter(name, shape, ir::parse_dtype(dtype));
             })
        .def("add_constant", [](ir::Graph& g, double value, const std::string& dtype) {
            return g.add_constant(value, ir::parse_dtype(dtype));
        })
        .def("add_op",
             [](ir::Graph& g, const std::string& op, const std::vector<int>& inputs, const nb::dict& attrs,
                const std::string& origin) { return g.add_node(ir::parse_op(op), inputs, to_attributes(attrs), origin); },
             nb::arg("op"), nb::arg("inputs"), nb::arg("attrs"), nb::arg("origin") = "")
        .def("set_outputs", &ir::Graph::set_outputs)
        .def("shape", [](const ir::Graph& g, int id) { return g.tensor(id).shape; })
        .def("dtype", [](const ir::Graph& g, int id) { return std::string(ir::name(g.tensor(id).dtype)); })
        .def("kernel_count",
             [](const ir::Graph& g) {
                 std::set<int> clusters;
                 for (const ir::Node& node : g.nodes()) clusters.insert(node.cluster);
                 return clusters.size();
             })
        .def("node_count", [](const ir::Graph& g) { return g.nodes().size(); })
        .def("__str__", &ir::to_text);

    m.def("op_names", [] {
        std::vector<std::string> names;
        for (const ir::OpInfo& row : ir::kOpTable) names.emplace_back(row.name);
        return names;
    });

    m.def("run_passes", [](const ir::Graph& graph) {
        ir::Graph optimized = graph;
        passes::run_pipeline(optimized);
        return optimized;
    });

    // (forward graph, backward graph, model outputs, gradient_of): see passes/autodiff.h.
    m.def("run_training_passes", [](const ir::Graph& graph, const std::vector<std::string>& wrt, int differentiable_outputs) {
        ir::Graph simplified = graph;
        passes::DifferentiatedGraphs graphs = passes::run_training_pipeline(simplified, wrt, differentiable_outputs);
        return nb::make_tuple(std::move(graphs.forward), std::move(graphs.backward), graphs.model_outputs,
                              graphs.gradient_of);
    });

    nb::class_<runtime::CompiledModel>(m, "CompiledModel")
        .def_prop_ro("input_names", [](const runtime::CompiledModel& c) { return names_of(c.inputs()); })
        .def_prop_ro("parameter_names", [](const runtime::CompiledModel& c) { return names_of(c.parameters()); })
        .def_prop_ro("parameter_shapes", [](const runtime::CompiledModel& c) { return shapes_of(c.parameters()); })
        .def_prop_ro("output_shapes", [](const runtime::CompiledModel& c) { return shapes_of(c.outputs()); })
        .def_prop_ro("output_dtypes",
                     [](const runtime::CompiledModel& c) {
                         std::vector<std::string> dtypes;
                         for (const auto& t : c.outputs()) dtypes.emplace_back(ir::name(t.dtype));
                         return dtypes;
                     })
        .def_prop_ro("library_path", &runtime::CompiledModel::library_path)
        .def_prop_ro("source_path",
                     [](const runtime::CompiledModel& c) {
                         std::string path = c.library_path();
                         return path.substr(0, path.size() - 3) + ".cpp";
                     })
        .def_prop_ro("kernel_calls", &runtime::CompiledModel::kernel_calls)
        .def_prop_ro("library_calls", &runtime::CompiledModel::library_calls)
        .def_prop_ro("unique_kernels", &runtime::CompiledModel::unique_kernels)
        .def_prop_ro("depth_first_calls", &runtime::CompiledModel::depth_first_calls)
        .def_prop_ro("aliased_reshapes", &runtime::CompiledModel::aliased_reshapes)
        .def_prop_ro("kernel_descriptions", &runtime::CompiledModel::kernel_descriptions)
        .def_prop_ro("workspace_bytes", &runtime::CompiledModel::workspace_bytes)
        .def_prop_ro("layout", &runtime::CompiledModel::layout)
        .def_prop_ro("derived_bytes", &runtime::CompiledModel::derived_bytes)
        .def_prop_ro("library_kept_bytes", &runtime::CompiledModel::library_kept_bytes)
        .def_prop_ro("profile", &runtime::CompiledModel::profile)
        .def_prop_ro("tuned_calls", &runtime::CompiledModel::tuned_calls)
        .def_prop_ro("measured_calls", &runtime::CompiledModel::measured_calls)
        .def(
            "run",
            [](runtime::CompiledModel& c, const std::vector<std::uintptr_t>& inputs, const PointerList& parameters,
               const std::vector<std::uintptr_t>& outputs, bool parameters_changed, int threads) {
                const auto in = to_pointers(inputs), out = to_pointers(outputs);
                nb::gil_scoped_release release;  // kernels run without Python; other threads may call too
                c.run(in, parameters.pointers, out, parameters_changed, threads);
            },
            nb::arg("inputs"), nb::arg("parameters"), nb::arg("outputs"), nb::arg("parameters_changed"),
            nb::arg("threads") = 0);

    nb::class_<PointerList>(m, "PointerList")
        .def("__init__", [](PointerList* self, const std::vector<std::uintptr_t>& addresses) {
            new (self) PointerList{to_pointers(addresses)};
        })
        .def("__len__", [](const PointerList& list) { return list.pointers.size(); });

    nb::class_<bindings::TensorFingerprint>(m, "TensorFingerprint")
        .def(nb::init<>())
        .def("changed", &bindings::TensorFingerprint::changed, nb::arg("tensors"))
        .def("forget", &bindings::TensorFingerprint::forget);
    m.def(
        "install_tensor_reader",
        [](const std::vector<std::string>& flags, const std::vector<nb::type_object>& types,
           const std::vector<std::pair<nb::object, std::uintptr_t>>& probes) {
            std::vector<PyTypeObject*> type_pointers;
            for (const nb::type_object& type : types) type_pointers.push_back(reinterpret_cast<PyTypeObject*>(type.ptr()));
            std::vector<bindings::TensorProbe> tensor_probes;
            for (const auto& [tensor, impl] : probes) tensor_probes.push_back({tensor.ptr(), impl});
            return bindings::install_tensor_reader(flags, type_pointers, tensor_probes);
        },
        nb::arg("flags"), nb::arg("types"), nb::arg("probes"));
    m.def("remove_tensor_reader", &bindings::remove_tensor_reader);
    m.def("tensor_reader_path", &bindings::tensor_reader_path);

    m.def(
        "compile",
        [](const ir::Graph& graph, const std::string& device, int index, bool autotuning, int threads,
           bool keep_for_deployment, bool weights_change_every_call) {
            devices::Device& target = devices::find_device(device, index);
            nb::gil_scoped_release release;  // compiling takes seconds; let other Python threads run
            return std::shared_ptr<runtime::CompiledModel>(runtime::compile_fastest_layout(
                graph, target,
                runtime::CompileOptions{autotuning, threads, keep_for_deployment, weights_change_every_call, ""}));
        },
        nb::arg("graph"), nb::arg("device"), nb::arg("index"), nb::arg("autotuning") = true, nb::arg("threads") = 0,
        nb::arg("keep_for_deployment") = false, nb::arg("weights_change_every_call") = false);

    // (library path, header path): see deploy/write_library.h.
    m.def(
        "deploy_shared_library",
        [](const runtime::CompiledModel& model, const std::vector<std::uintptr_t>& parameters,
           const std::string& lib_name, const std::string& func_name, const std::string& directory,
           const std::string& runtime_archive, const std::string& include_directory,
           const std::string& build_directory) {
            std::vector<const void*> values;
            for (void* pointer : to_pointers(parameters)) values.push_back(pointer);
            nb::gil_scoped_release release;
            const deploy::DeployedFiles files = deploy::write_shared_library(
                model, values,
                {lib_name, func_name, directory, runtime_archive, include_directory, build_directory});
            return std::make_pair(files.library.string(), files.header.string());
        },
        nb::arg("model"), nb::arg("parameters"), nb::arg("lib_name"), nb::arg("func_name"), nb::arg("directory"),
        nb::arg("runtime_archive"), nb::arg("include_directory"), nb::arg("build_directory"));

    m.def("devices", &devices::device_names);
    m.def("cache_dir", [] { return jit::cache_directory().string(); });
    m.def("clear_cache", &jit::clear_cache);
    m.def("info", [] {
        std::map<std::string, std::string> info;
        info["version"] = kVersion;
        info["cache_dir"] = jit::cache_directory().string();
        std::string names, backends;
        for (const std::string& name : devices::device_names()) {
            names += (names.empty() ? "" : ", ") + name;
            devices::Device& device = devices::find_device(name, 0);
            for (const std::string& backend : device.backends())
                backends += (backends.empty() ? "" : ", ") + name + ": " + backend;
            try {
                info["compiler"] = device.compiler_description();
            } catch (const CompileError& e) {
                info["compiler"] = std::string("none: ") + e.what();
            }
        }
        info["devices"] = names;
        info["backends"] = backends;
        return info;
    });
}

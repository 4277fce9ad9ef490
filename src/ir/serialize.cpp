#include "sol/ir/serialize.h"

#include "sol/error.h"
#include "sol/ir/verify.h"
#include "sol/support/text_format.h"

namespace sol::ir {
namespace {

constexpr std::string_view kMagic = "sol-graph-1";

void write_attribute(support::TextWriter& out, const std::string& key, const AttributeValue& value) {
    out.text(key);
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
        out.word("i").integer(*i);
    } else if (const auto* f = std::get_if<double>(&value)) {
        out.word("f").real(*f);
    } else if (const auto* is = std::get_if<std::vector<std::int64_t>>(&value)) {
        out.word("I").integers(*is);
    } else if (const auto* s = std::get_if<std::string>(&value)) {
        out.word("s").text(*s);
    } else {
        const auto& fs = std::get<std::vector<double>>(value);
        out.word("F").integer(static_cast<std::int64_t>(fs.size()));
        for (double f : fs) out.real(f);
    }
}

AttributeValue read_attribute(support::TextReader& in) {
    const std::string_view kind = in.word();
    if (kind == "i") return in.integer();
    if (kind == "f") return in.real();
    if (kind == "I") return in.integers();
    if (kind == "s") return in.text();
    if (kind == "F") {
        const std::int64_t count = in.integer();
        std::vector<double> values;
        for (std::int64_t k = 0; k < count; ++k) values.push_back(in.real());
        return values;
    }
    in.fail("unknown attribute kind '" + std::string(kind) + "'");
}

}  // namespace

std::string serialize(const Graph& graph) {
    support::TextWriter out;
    out.word(kMagic).line();
    out.word("tensors").integer(static_cast<std::int64_t>(graph.tensor_count())).line();
    for (std::size_t id = 0; id < graph.tensor_count(); ++id) {
        const Tensor& t = graph.tensor(static_cast<int>(id));
        out.word("t").integer(static_cast<int>(t.kind)).word(name(t.dtype)).integer(t.channel_block).real(t.value);
        out.integers(t.shape).text(t.name).line();
    }
    out.word("nodes").integer(static_cast<std::int64_t>(graph.nodes().size())).line();
    for (const Node& node : graph.nodes()) {
        out.word("n").word(name(node.op)).integer(node.output).integer(node.cluster).ids(node.inputs);
        out.integer(static_cast<std::int64_t>(node.attrs.all().size()));
        for (const auto& [key, value] : node.attrs.all()) write_attribute(out, key, value);
        out.text(node.origin).line();
    }
    out.word("inputs").ids(graph.inputs()).line();
    out.word("parameters").ids(graph.parameters()).line();
    out.word("outputs").ids(graph.outputs()).line();
    return out.str();
}

Graph deserialize(std::string_view text) {
    support::TextReader in(text, "serialized graph");
    in.expect(kMagic);
    in.expect("tensors");
    const std::int64_t tensor_count = in.integer();
    std::vector<Tensor> tensors;
    for (std::int64_t id = 0; id < tensor_count; ++id) {
        in.expect("t");
        Tensor t;
        t.id = static_cast<int>(id);
        const std::int64_t kind = in.integer();
        if (kind < 0 || kind > static_cast<int>(TensorKind::Intermediate)) in.fail("unknown tensor kind");
        t.kind = static_cast<TensorKind>(kind);
        t.dtype = parse_dtype(in.word());
        t.channel_block = static_cast<int>(in.integer());
        t.value = in.real();
        t.shape = in.integers();
        t.name = in.text();
        tensors.push_back(std::move(t));
    }
    in.expect("nodes");
    const std::int64_t node_count = in.integer();
    std::vector<Node> nodes;
    for (std::int64_t k = 0; k < node_count; ++k) {
        in.expect("n");
        Node node;
        node.op = parse_op(in.word());
        node.output = static_cast<int>(in.integer());
        node.cluster = static_cast<int>(in.integer());
        node.inputs = in.ids();
        const std::int64_t attribute_count = in.integer();
        for (std::int64_t a = 0; a < attribute_count; ++a) {
            std::string key = in.text();
            node.attrs.set(key, read_attribute(in));
        }
        node.origin = in.text();
        nodes.push_back(std::move(node));
    }
    in.expect("inputs");
    std::vector<int> inputs = in.ids();
    in.expect("parameters");
    std::vector<int> parameters = in.ids();
    in.expect("outputs");
    std::vector<int> outputs = in.ids();
    if (!in.at_end()) in.fail("trailing text");
    Graph graph = Graph::assemble(std::move(tensors), std::move(nodes), std::move(inputs), std::move(parameters),
                                  std::move(outputs));
    verify(graph, "after reading a serialized graph");
    return graph;
}

}  // namespace sol::ir

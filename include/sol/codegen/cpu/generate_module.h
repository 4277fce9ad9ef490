// C++ code generation for host CPUs (x86-64, ARM64): one kernel per fused
// cluster of the graph, plain loops the host compiler vectorizes, OpenMP
// across cores.
#pragma once

#include <cstdint>

#include "sol/codegen/kernel.h"
#include "sol/ir/graph.h"

namespace sol::codegen::cpu {

// Knobs of the generator, so tuning (vector width, layout, tiling) changes
// parameters rather than the emitters' structure.
struct CpuTarget {
    int vector_width = 8;                  // floats per SIMD register (AVX2: 8, AVX-512: 16)
    std::int64_t parallel_threshold = 1 << 15;  // below this much work a kernel runs on one thread
    std::int64_t conv_channel_block = 8;   // output channels a convolution computes per input pass
    int compile_units = 1;                 // translation units to compile in parallel (the host's cores)
};

// Whether the generated kernel of `cluster` reads or writes `tensor_id`
// efficiently when it is channel-blocked (asked by the layout pass).
// Generated kernels are correct for any layout; this is about speed.
bool handles_channel_blocked(const ir::Graph& graph, const std::vector<int>& cluster, int tensor_id);

// Requires fusion to have assigned Node::cluster to every node. Clusters the
// selector gives to a library backend get a call without generated code.
GeneratedModule generate_module(const ir::Graph& graph, const CpuTarget& target, const BackendSelector& select = {});

}  // namespace sol::codegen::cpu

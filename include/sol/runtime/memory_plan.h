// Places intermediate tensors in one workspace, reusing memory whose tensor
// is no longer needed (first fit over freed blocks, by lifetime).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sol::runtime {

struct BufferLifetime {
    int tensor = -1;
    std::size_t bytes = 0;
    int first_step = 0;  // step that writes it
    int last_step = 0;   // last step that reads it
    // A tensor whose buffer this one may take over: the step writing this
    // one computes it in place (oneDNN's sum post-op adds the residual
    // already in its output). Taken when that step is the other's last
    // reader and the sizes match; -1: none.
    int may_overwrite = -1;
};

struct MemoryPlan {
    std::vector<std::int64_t> offsets;  // per tensor id; -1 when not in the workspace
    std::size_t workspace_bytes = 0;
};

// `tensor_count` sizes the offset table. Buffers are 64-byte aligned.
MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers, std::size_t tensor_count);

}  // namespace sol::runtime

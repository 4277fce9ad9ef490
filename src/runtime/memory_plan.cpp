#include "sol/runtime/memory_plan.h"

#include <algorithm>
#include <map>

namespace sol::runtime {
namespace {

constexpr std::size_t kAlignment = 64;

std::size_t aligned(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers, std::size_t tensor_count) {
    MemoryPlan plan;
    plan.offsets.assign(tensor_count, -1);
    int last_step = 0;
    for (const BufferLifetime& b : buffers) last_step = std::max(last_step, b.last_step);
    std::map<std::size_t, std::size_t> free_blocks;  // offset -> size, kept merged
    std::size_t end = 0;
    std::map<int, const BufferLifetime*> by_tensor;
    for (const BufferLifetime& b : buffers) by_tensor[b.tensor] = &b;
    std::vector<bool> handed_over(tensor_count, false);  // its memory now belongs to another tensor
    auto release = [&free_blocks](std::size_t offset, std::size_t size) {
        auto next = free_blocks.lower_bound(offset);
        if (next != free_blocks.end() && offset + size == next->first) {
            size += next->second;
            next = free_blocks.erase(next);
        }
        if (next != free_blocks.begin()) {
            auto previous = std::prev(next);
            if (previous->first + previous->second == offset) {
                previous->second += size;
                return;
            }
        }
        free_blocks.emplace(offset, size);
    };
    for (int step = 0; step <= last_step; ++step) {
        // Allocate what this step writes before freeing what it last reads,
        // so a kernel never writes over its own inputs.
        for (const BufferLifetime& b : buffers) {
            if (b.first_step != step) continue;
            const std::size_t size = aligned(b.bytes);
            auto previous = by_tensor.find(b.may_overwrite);
            if (previous != by_tensor.end() && previous->second->last_step == step &&
                aligned(previous->second->bytes) == size && !handed_over[b.may_overwrite]) {
                plan.offsets[b.tensor] = plan.offsets[b.may_overwrite];
                handed_over[b.may_overwrite] = true;
                continue;
            }
            auto fit = std::find_if(free_blocks.begin(), free_blocks.end(),
                                    [size](const auto& block) { return block.second >= size; });
            if (fit != free_blocks.end()) {
                const std::size_t offset = fit->first, remaining = fit->second - size;
                free_blocks.erase(fit);
                if (remaining > 0) free_blocks.emplace(offset + size, remaining);
                plan.offsets[b.tensor] = static_cast<std::int64_t>(offset);
            } else if (!free_blocks.empty() && std::prev(free_blocks.end())->first + std::prev(free_blocks.end())->second == end) {
                // The free block at the end grows to the size needed, rather
                // than leaving it behind as a hole.
                const auto last = std::prev(free_blocks.end());
                plan.offsets[b.tensor] = static_cast<std::int64_t>(last->first);
                end = last->first + size;
                free_blocks.erase(last);
            } else {
                plan.offsets[b.tensor] = static_cast<std::int64_t>(end);
                end += size;
            }
        }
        for (const BufferLifetime& b : buffers)
            if (b.last_step == step && !handed_over[b.tensor]) release(static_cast<std::size_t>(plan.offsets[b.tensor]), aligned(b.bytes));
    }
    plan.workspace_bytes = end;
    return plan;
}

}  // namespace sol::runtime

// Large blocks straight from the operating system (anonymous mmap) rather
// than from malloc, for memory a model holds for long or frees in big
// pieces: its reordered weights, its workspace, the parameter stage's
// transient folded weights.
//
// Why: malloc serves blocks of a few MiB from its heap once a few of that
// size were freed, and keeps what is freed there. The parameter stage of
// resnet50 (BatchNorm folded into each weight, reordered, then freed) left
// about 35 MiB of such freed heap resident for the life of the process
// (peak 905 MiB instead of 870). A mapping goes back to the system when
// released.
//
// Transparent huge pages (madvise) for these blocks were tried: no speed-up
// stood out of the noise on resnet50, mobilenet_v2, densenet121 and
// resnet18 at batch 1, and a partly used huge page is resident whole.
#pragma once

#include <cstddef>

namespace sol {

// Blocks at least this large are worth a mapping of their own.
inline constexpr std::size_t kPageMemoryThreshold = std::size_t{1} << 20;

// Page-aligned, zero-filled memory of `bytes`; throws std::bad_alloc when
// the system has none.
void* map_pages(std::size_t bytes);
// Gives back a block from map_pages with the same `bytes`.
void unmap_pages(void* memory, std::size_t bytes) noexcept;

}  // namespace sol

#include "sol/support/page_memory.h"

#include <sys/mman.h>

#include <new>

namespace sol {

void* map_pages(std::size_t bytes) {
    void* memory = mmap(nullptr, bytes == 0 ? 1 : bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    return memory;
}

void unmap_pages(void* memory, std::size_t bytes) noexcept {
    if (memory != nullptr) munmap(memory, bytes == 0 ? 1 : bytes);
}

}  // namespace sol

#include "sol/support/content_hash.h"

#include <cstdio>
#include <xxhash.h>

namespace sol {

std::string content_hash(std::string_view data) {
    const XXH128_hash_t hash = XXH3_128bits(data.data(), data.size());
    char text[33];
    std::snprintf(text, sizeof(text), "%016llx%016llx", static_cast<unsigned long long>(hash.high64),
                  static_cast<unsigned long long>(hash.low64));
    return text;
}

}  // namespace sol

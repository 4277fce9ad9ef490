// A loaded shared library (dlopen), closed when the last owner lets go.
#pragma once

#include <filesystem>
#include <string>

namespace sol::jit {

class SharedLibrary {
public:
    explicit SharedLibrary(const std::filesystem::path& path);  // throws sol::Error
    ~SharedLibrary();
    SharedLibrary(const SharedLibrary&) = delete;
    SharedLibrary& operator=(const SharedLibrary&) = delete;

    void* symbol(const std::string& name) const;  // throws sol::Error naming symbol and file
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    void* handle_ = nullptr;
};

}  // namespace sol::jit

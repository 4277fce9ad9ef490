// The on-disk compile cache and the compiler driver: hits do not recompile,
// damaged entries are rebuilt, an unwritable folder falls back to a private
// temporary one, and failures name the compiler and the log.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "sol/error.h"
#include "sol/jit/compile_cache.h"
#include "sol/jit/compiler.h"
#include "sol/jit/shared_library.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
namespace fs = std::filesystem;
namespace jit = sol::jit;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Nanosecond modification time (std::filesystem's clock is fine too, but
// stat says exactly what the kernel recorded).
std::int64_t mtime_ns(const fs::path& path) {
    struct stat info {};
    if (stat(path.c_str(), &info) != 0) return -1;
    return std::int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec;
}

std::string answer_source(int answer) {
    return "extern \"C\" int sol_test_answer() { return " + std::to_string(answer) + "; }\n";
}

int call_answer(const fs::path& library) {
    jit::SharedLibrary loaded(library);
    auto function = reinterpret_cast<int (*)()>(loaded.symbol("sol_test_answer"));
    return function();
}

std::size_t files_in(const fs::path& dir) {
    std::size_t count = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
        if (entry.is_regular_file()) ++count;
    return count;
}

class CompileCacheTest : public FreshCache {
protected:
    jit::Compiler compiler_ = jit::find_host_compiler();
};

TEST_F(CompileCacheTest, CacheDirectoryFollowsSolCacheDir) {
    EXPECT_EQ(fs::weakly_canonical(jit::cache_directory()), fs::weakly_canonical(cache_.path()));
}

TEST_F(CompileCacheTest, SameSourceTwiceIsOneCompile) {
    const fs::path first = jit::build_shared_library(compiler_, answer_source(42), "test");
    ASSERT_TRUE(fs::exists(first));
    EXPECT_EQ(first.parent_path(), jit::cache_directory());
    EXPECT_EQ(first.extension(), ".so");
    const std::int64_t built_at = mtime_ns(first);
    const fs::path log = first.parent_path() / (first.stem().string() + ".log");
    ASSERT_TRUE(fs::exists(log)) << "the compiler's log stays beside the artifact";
    const std::int64_t logged_at = mtime_ns(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));

    const fs::path second = jit::build_shared_library(compiler_, answer_source(42), "test");
    EXPECT_EQ(second, first);
    EXPECT_EQ(mtime_ns(second), built_at) << "a cache hit must not rebuild";
    EXPECT_EQ(mtime_ns(log), logged_at) << "a cache hit must not run the compiler";
    EXPECT_EQ(call_answer(second), 42);

    const fs::path other = jit::build_shared_library(compiler_, answer_source(7), "test");
    EXPECT_NE(other, first) << "different source, different entry";
    EXPECT_EQ(call_answer(other), 7);
}

// A module split into translation units: the parts compile in parallel and
// link into one library exporting every part's functions; a failing part is
// named in the error, with its own log.
TEST_F(CompileCacheTest, PartsCompileSeparatelyIntoOneLibrary) {
    const std::string whole = answer_source(3) + "extern \"C\" int sol_test_other() { return 4; }\n";
    const std::vector<std::string> parts{answer_source(3), "extern \"C\" int sol_test_other() { return 4; }\n"};
    const fs::path library = jit::build_shared_library(compiler_, whole, "test", parts);
    EXPECT_EQ(call_answer(library), 3);
    jit::SharedLibrary loaded(library);
    EXPECT_EQ(reinterpret_cast<int (*)()>(loaded.symbol("sol_test_other"))(), 4);
    EXPECT_TRUE(fs::exists(fs::path(library).replace_extension(".cpp"))) << "the whole module stays readable";

    const std::vector<std::string> broken{answer_source(5), "this is not C++\n"};
    try {
        jit::build_shared_library(compiler_, answer_source(5) + "this is not C++\n", "test", broken);
        FAIL() << "a part that does not compile must fail the build";
    } catch (const sol::CompileError& error) {
        EXPECT_TRUE(contains(error.what(), ".part1")) << error.what();
    }
}

TEST_F(CompileCacheTest, DifferentFlagsAreADifferentEntry) {
    const fs::path optimized = jit::build_shared_library(compiler_, answer_source(1), "test");
    jit::Compiler debug = compiler_;
    debug.flags.push_back("-g");
    EXPECT_NE(jit::build_shared_library(debug, answer_source(1), "test"), optimized);
    EXPECT_NE(debug.identity(), compiler_.identity());
    EXPECT_TRUE(contains(compiler_.identity(), compiler_.executable));
}

TEST_F(CompileCacheTest, TruncatedLibraryIsRebuiltAndLoads) {
    ScopedEnv quiet("SOL_LOG", "error");  // the "damaged entry" warning is expected
    const fs::path library = jit::build_shared_library(compiler_, answer_source(5), "test");
    const auto size = fs::file_size(library);
    fs::resize_file(library, size / 2);
    const std::int64_t damaged_at = mtime_ns(library);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));

    const fs::path rebuilt = jit::build_shared_library(compiler_, answer_source(5), "test");
    EXPECT_EQ(rebuilt, library);
    EXPECT_TRUE(mtime_ns(rebuilt) != damaged_at || fs::file_size(rebuilt) != size / 2) << "not rebuilt";
    EXPECT_EQ(fs::file_size(rebuilt), size);
    EXPECT_EQ(call_answer(rebuilt), 5);
}

TEST_F(CompileCacheTest, MissingChecksumIsRebuilt) {
    ScopedEnv quiet("SOL_LOG", "error");  // the "damaged entry" warning is expected
    const fs::path library = jit::build_shared_library(compiler_, answer_source(6), "test");
    const fs::path checksum = library.string() + ".xxh";
    ASSERT_TRUE(fs::exists(checksum));
    fs::remove(checksum);
    const std::int64_t old = mtime_ns(library);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(jit::build_shared_library(compiler_, answer_source(6), "test"), library);
    EXPECT_NE(mtime_ns(library), old);
    EXPECT_TRUE(fs::exists(checksum));
    EXPECT_EQ(call_answer(library), 6);
}

TEST_F(CompileCacheTest, StoreAndFindVerifyTheChecksum) {
    ScopedEnv quiet("SOL_LOG", "error");  // the "damaged entry" warning is expected
    const fs::path built = jit::temporary_path("entry", ".bin");
    EXPECT_EQ(built.parent_path(), jit::cache_directory());
    { std::ofstream(built) << "payload"; }
    const fs::path stored = jit::store_artifact("entry", ".bin", built);
    EXPECT_FALSE(fs::exists(built)) << "moved, not copied";
    EXPECT_EQ(jit::find_artifact("entry", ".bin"), stored);
    EXPECT_EQ(jit::find_artifact("other", ".bin"), std::nullopt);
    { std::ofstream(stored) << "PAYLOAD"; }  // same size, other content
    EXPECT_EQ(jit::find_artifact("entry", ".bin"), std::nullopt) << "a damaged entry is never returned";
    // It is not deleted (a concurrent writer may be renaming a fresh copy in);
    // storing a rebuilt artifact replaces it, and that one verifies.
    const fs::path rebuilt = jit::temporary_path("entry", ".bin");
    { std::ofstream(rebuilt) << "payload"; }
    EXPECT_EQ(jit::store_artifact("entry", ".bin", rebuilt), stored);
    EXPECT_EQ(jit::find_artifact("entry", ".bin"), stored);
}

TEST_F(CompileCacheTest, ClearCacheEmptiesTheFolder) {
    jit::build_shared_library(compiler_, answer_source(8), "test");
    const std::size_t before = files_in(jit::cache_directory());
    ASSERT_GE(before, 4u) << "source, log, library and checksum";
    EXPECT_EQ(jit::clear_cache(), before);
    EXPECT_EQ(files_in(jit::cache_directory()), 0u);
    EXPECT_TRUE(fs::is_empty(jit::cache_directory()));
    EXPECT_EQ(jit::clear_cache(), 0u);
    // Still usable afterwards.
    EXPECT_EQ(call_answer(jit::build_shared_library(compiler_, answer_source(8), "test")), 8);
}

TEST_F(CompileCacheTest, UnwritableCacheDirFallsBackToATemporaryFolder) {
    const fs::path blocker = cache_.path() / "a-file";
    { std::ofstream(blocker) << "not a folder"; }
    const fs::path impossible = blocker / "cache";
    ScopedEnv env("SOL_CACHE_DIR", impossible.string());
    ScopedEnv quiet("SOL_LOG", "error");
    const fs::path fallback = jit::cache_directory();
    EXPECT_NE(fallback, impossible);
    EXPECT_TRUE(fs::is_directory(fallback));
    EXPECT_EQ(jit::cache_directory(), fallback) << "the fallback is made once";
    const fs::path library = jit::build_shared_library(compiler_, answer_source(9), "test");
    EXPECT_EQ(library.parent_path(), fallback);
    EXPECT_EQ(call_answer(library), 9);
    std::error_code error;
    fs::remove_all(fallback, error);
}

TEST_F(CompileCacheTest, CompileErrorNamesCompilerAndLog) {
    try {
        jit::build_shared_library(compiler_, "this is not C++;\n", "broken kernels");
        FAIL() << "the compiler must reject this";
    } catch (const sol::CompileError& error) {
        const std::string message = error.what();
        EXPECT_TRUE(contains(message, compiler_.executable)) << message;
        EXPECT_TRUE(contains(message, ".log")) << message;
        EXPECT_TRUE(contains(message, "error")) << "the first lines of the log: " << message;
        // The log it names exists and holds the diagnostics.
        const std::size_t end = message.find(".log") + 4;
        const std::size_t start = message.rfind(' ', end) + 1;
        const fs::path log = message.substr(start, end - start);
        ASSERT_TRUE(fs::exists(log)) << log;
        std::ifstream in(log);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_TRUE(contains(text, "error")) << text;
    }
    // Nothing half-built is left to be found later.
    for (const auto& entry : fs::directory_iterator(jit::cache_directory()))
        EXPECT_NE(entry.path().extension(), ".so") << entry.path();
}

TEST(FindHostCompiler, NonexistentCxxIsNamed) {
    ScopedEnv cxx("CXX", "/nonexistent/c++");
    try {
        jit::find_host_compiler();
        FAIL() << "CXX=/nonexistent/c++ cannot run";
    } catch (const sol::CompileError& error) {
        EXPECT_TRUE(contains(error.what(), "/nonexistent/c++")) << error.what();
    }
}

TEST(FindHostCompiler, FindsAWorkingCompilerWithFlags) {
    ScopedEnv cxx("CXX", std::nullopt);
    const jit::Compiler compiler = jit::find_host_compiler();
    EXPECT_FALSE(compiler.executable.empty());
    EXPECT_FALSE(compiler.version.empty());
    EXPECT_TRUE(contains(compiler.flag_text(), "-shared")) << compiler.flag_text();
    EXPECT_TRUE(contains(compiler.flag_text(), "-fPIC")) << compiler.flag_text();
    EXPECT_FALSE(compiler.machine.empty());
}

TEST_F(CompileCacheTest, MissingSymbolThrowsNamingSymbolAndFile) {
    const fs::path path = jit::build_shared_library(compiler_, answer_source(3), "test");
    jit::SharedLibrary library(path);
    EXPECT_EQ(library.path(), path);
    try {
        library.symbol("sol_no_such_kernel");
        FAIL();
    } catch (const sol::Error& error) {
        EXPECT_TRUE(contains(error.what(), "sol_no_such_kernel")) << error.what();
        EXPECT_TRUE(contains(error.what(), path.string())) << error.what();
    }
}

TEST(SharedLibrary, MissingFileThrowsNamingIt) {
    try {
        jit::SharedLibrary library("/nonexistent/libnothing.so");
        FAIL();
    } catch (const sol::Error& error) {
        EXPECT_TRUE(contains(error.what(), "/nonexistent/libnothing.so")) << error.what();
    }
}

}  // namespace

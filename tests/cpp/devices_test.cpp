// The device registry and the host device: one instance per (name, index),
// clear errors for unknown devices, aligned host memory.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#include "sol/devices/device.h"
#include "sol/error.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
namespace devices = sol::devices;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Devices, HostIsRegisteredAndKeptAsOneInstance) {
    const auto names = devices::device_names();
    EXPECT_NE(std::find(names.begin(), names.end(), "x86"), names.end());
    devices::Device& first = devices::find_device("x86", 0);
    EXPECT_EQ(&devices::find_device("x86", 0), &first);
    EXPECT_EQ(first.name(), "x86");
    EXPECT_EQ(first.index(), 0);
    EXPECT_FALSE(first.backends().empty());
}

TEST(Devices, UnknownDeviceNamesTheAvailableOnes) {
    try {
        devices::find_device("tpu", 0);
        FAIL();
    } catch (const sol::DeviceError& error) {
        EXPECT_TRUE(contains(error.what(), "'tpu'")) << error.what();
        EXPECT_TRUE(contains(error.what(), "x86")) << error.what();
    }
    EXPECT_THROW(devices::find_device("x86", 1), sol::DeviceError);
    EXPECT_THROW(devices::find_device("x86", 1), sol::DeviceError) << "a failed index stays failed";
}

TEST(Devices, HostMemoryIsAlignedAndCopies) {
    devices::Device& host = devices::find_device("x86", 0);
    for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{4096}}) {
        void* memory = host.allocate(bytes);
        ASSERT_NE(memory, nullptr);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(memory) % 64, 0u) << bytes << " bytes";
        host.release(memory);
    }
    const float source[3] = {1.0f, 2.0f, 3.0f};
    float back[3] = {};
    void* memory = host.allocate(sizeof(source));
    host.copy_from_host(memory, source, sizeof(source));
    host.copy_to_host(back, memory, sizeof(back));
    host.release(memory);
    EXPECT_EQ(std::memcmp(source, back, sizeof(source)), 0);
}

// Resident memory of this process in KiB (VmRSS).
long resident_kib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Large blocks go back to the system when released (support/page_memory.h).
// malloc maps the first blocks of these sizes too, but once it freed one it
// serves the smaller from its heap and keeps it resident after release.
TEST(Devices, LargeHostBlocksLeaveNothingResidentWhenReleased) {
    devices::Device& host = devices::find_device("x86", 0);
    constexpr std::size_t kBlock = std::size_t{24} << 20;
    for (int round = 0; round < 2; ++round) {  // the second round: after malloc would have cached one
        const long before = resident_kib();
        ASSERT_GT(before, 0);
        void* first = host.allocate(kBlock);
        void* second = host.allocate(kBlock / 2);
        std::memset(first, 1, kBlock);
        std::memset(second, 1, kBlock / 2);
        EXPECT_GE(resident_kib() - before, 30 * 1024) << "the blocks were written";
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % 64, 0u);
        host.release(second);
        host.release(first);
        EXPECT_LT(resident_kib() - before, 4 * 1024) << "round " << round;
    }
}

TEST(Devices, CompilerDescriptionNamesFlags) {
    ScopedEnv cxx("CXX", std::nullopt);
    const std::string text = devices::find_device("x86", 0).compiler_description();
    EXPECT_TRUE(contains(text, "-O3")) << text;
    EXPECT_TRUE(contains(text, "-fopenmp")) << text;
}

}  // namespace

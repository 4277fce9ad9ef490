// The device registry and the host device: one instance per (name, index),
// clear errors for unknown devices, aligned host memory.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

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

TEST(Devices, CompilerDescriptionNamesFlags) {
    ScopedEnv cxx("CXX", std::nullopt);
    const std::string text = devices::find_device("x86", 0).compiler_description();
    EXPECT_TRUE(contains(text, "-O3")) << text;
    EXPECT_TRUE(contains(text, "-fopenmp")) << text;
}

}  // namespace

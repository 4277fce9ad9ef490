// Register tiles of convolutions that write a whole pixel's output channels
// at once (NHWC, or NCHW16c/8c a register per block): T pixels by the output
// channels' registers, accumulated in variables acc{t}_{r} that stay in
// registers through the whole reduction, then each register passed through
// its epilogue chain and stored. Shared by the 1x1 convolution on NHWC images
// and the convolution of images with few input channels.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sol::codegen::cpu {

class KernelBuilder;

// A pixel's output channels in registers: `full` of `lanes` (the target's
// vector width), then one of 8 lanes when the channels leave 8 over (72 on
// AVX-512: four of 16 and one of 8; see register_tail).
struct ChannelRegisters {
    std::int64_t full = 0, tail = 0;
    int lanes = 0;

    ChannelRegisters(std::int64_t channels, int vector_width);
    std::int64_t count() const { return full + (tail > 0); }
    std::int64_t lanes_of(std::int64_t r) const { return r < full ? lanes : tail; }
    // Register r's type: `vec` (typedef'd by the kernel to the full register) or sol_f32x8.
    std::string type(std::int64_t r) const { return r < full ? "vec" : "sol_f32x8"; }
};

// Pixels per tile: T * registers accumulators and the registers' weights fit
// the register file (32 on AVX-512, 16 on AVX2) beside one broadcast, or
// beside all T of a step's broadcasts when `broadcasts_ahead`; at most 12.
std::int64_t tile_pixels(std::int64_t registers, int vector_width, bool broadcasts_ahead);

// Each register's epilogue (KernelBuilder::register_chain_and_store with its
// lanes), reading `v` and the register's c0; generated once per kernel.
std::vector<std::string> register_chains(KernelBuilder& builder, const ChannelRegisters& registers);

// `acc{t}_{r} = {}` for the `pixels` of a tile.
std::string declare_accumulators(std::int64_t pixels, const ChannelRegisters& registers);

// `w{r}`: the registers of output channels read from `weights` (a float
// pointer expression), the output channels contiguous there.
std::string load_weight_registers(const ChannelRegisters& registers, const std::string& weights);

// Pixel t's accumulators += the broadcast input value `x` times each w{r}.
std::string multiply_add_pixel(std::int64_t t, const ChannelRegisters& registers, const std::string& x);

// Stores a tile: for each pixel t, `pixel_index(t)` declares i0, i2, i3 (the
// output pixel), then each register r's v = acc{t}_{r} (+ the bias
// register, when `bias` names its pointer) runs through chains[r].
std::string store_tile(std::int64_t pixels, const ChannelRegisters& registers, const std::string& bias,
                       const std::vector<std::string>& chains,
                       const std::function<std::string(std::int64_t)>& pixel_index);

}  // namespace sol::codegen::cpu

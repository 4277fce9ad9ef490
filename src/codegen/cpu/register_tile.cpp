#include "register_tile.h"

#include <algorithm>
#include <sstream>

#include "kernel_builder.h"

namespace sol::codegen::cpu {

ChannelRegisters::ChannelRegisters(std::int64_t channels, int vector_width)
    : full(channels / vector_width), tail(std::max(0, register_tail(channels, vector_width))), lanes(vector_width) {}

std::int64_t tile_pixels(std::int64_t registers, int vector_width, bool broadcasts_ahead) {
    // With broadcasts ahead (the few-input-channel kernel: GCC loads a tap's T broadcasts before
    // its multiply-adds), too few registers left for the weights make GCC fold a weight load
    // into every multiply-add instead, and the loads set the pace. Measured (batch 8, 2
    // threads): 7x7 stride 2, 3 -> 64 channels 3.95 ms with T = 5, 4.30 with 6, 5.46 with 8;
    // 3x3, 3 -> 64 channels 0.79 ms with 5, 1.62 with 8. The 1x1 kernel is the other way round:
    // counted with all broadcasts, its 24 -> 72 layer got 4 pixels instead of 5 and went from on
    // par with oneDNN to 16% slower than it.
    const std::int64_t file = vector_width >= 16 ? 32 : 16;
    const std::int64_t pixels =
        broadcasts_ahead ? (file - registers) / (registers + 1) : (file - 1 - registers) / registers;
    return std::clamp<std::int64_t>(pixels, 1, 12);
}

std::vector<std::string> register_chains(KernelBuilder& b, const ChannelRegisters& regs) {
    std::vector<std::string> chains;
    for (std::int64_t r = 0; r < regs.count(); ++r) {
        b.use_channel_block_loops(static_cast<int>(regs.lanes_of(r)));
        chains.push_back(b.register_chain_and_store());
    }
    return chains;
}

std::string declare_accumulators(std::int64_t pixels, const ChannelRegisters& regs) {
    std::ostringstream s;
    for (std::int64_t r = 0; r < regs.count(); ++r) {
        s << regs.type(r);
        for (std::int64_t t = 0; t < pixels; ++t) s << (t ? ", " : " ") << "acc" << t << "_" << r << " = {}";
        s << ";\n";
    }
    return s.str();
}

std::string load_weight_registers(const ChannelRegisters& regs, const std::string& weights) {
    std::ostringstream s;
    for (std::int64_t r = 0; r < regs.count(); ++r)
        s << "const " << regs.type(r) << " w" << r << " = sol_vload<" << regs.type(r) << ">(" << weights << " + "
          << r * regs.lanes << ");\n";
    return s.str();
}

std::string multiply_add_pixel(std::int64_t t, const ChannelRegisters& regs, const std::string& x) {
    std::ostringstream s;
    s << "{ const float xv = " << x << ";";
    for (std::int64_t r = 0; r < regs.count(); ++r) s << " acc" << t << "_" << r << " += xv * w" << r << ";";
    s << " }\n";
    return s.str();
}

std::string store_tile(std::int64_t pixels, const ChannelRegisters& regs, const std::string& bias,
                       const std::vector<std::string>& chains,
                       const std::function<std::string(std::int64_t)>& pixel_index) {
    std::ostringstream s;
    for (std::int64_t t = 0; t < pixels; ++t) {
        s << "{\n" << indent(pixel_index(t), 4) << "    (void)i0, (void)i2, (void)i3;\n";
        for (std::int64_t r = 0; r < regs.count(); ++r) {
            // c0 numbers registers of this register's lanes: channel c0 * lanes.
            const std::int64_t first_channel = r * regs.lanes;
            s << "    {\n"
              << "        const int64_t c0 = " << first_channel / regs.lanes_of(r) << ";\n"
              << "        " << regs.type(r) << " v = acc" << t << "_" << r;
            if (!bias.empty()) s << " + sol_vload<" << regs.type(r) << ">(" << bias << " + " << first_channel << ")";
            s << ";\n" << indent(chains[r], 8) << "    }\n";
        }
        s << "}\n";
    }
    return s.str();
}

}  // namespace sol::codegen::cpu

// The operands a oneDNN kernel keeps between calls (dnnl_operands.h): a call
// with other pointers than the last must read and write those, and threads
// sharing one set (the later ones build their own) must each get their own
// answers.
#ifdef SOL_HAVE_DNNL
#include "dnnl_operands.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "dnnl_post_ops.h"

namespace {

namespace dn = ::dnnl;
using sol::backends::dnnl::CallPointers;
using sol::backends::dnnl::Operands;

// y = relu(x) over 64 floats, x in [-n/2, n/2) scaled by `scale`.
struct Relu {
    dn::memory::desc desc{{64}, dn::memory::data_type::f32, dn::memory::format_tag::a};
    dn::eltwise_forward primitive{dn::eltwise_forward::primitive_desc(
        dn::eltwise_forward::desc(dn::prop_kind::forward_inference, dn::algorithm::eltwise_relu, desc, 0.0f),
        sol::backends::dnnl::engine())};
    Operands operands;
    Relu() {
        operands.add(DNNL_ARG_SRC, desc);
        operands.add(DNNL_ARG_DST, desc);
    }
    void run(std::vector<float>& x, std::vector<float>& y) {
        CallPointers pointers;
        pointers.push(x.data());
        pointers.push(y.data());
        operands.execute(primitive, sol::backends::dnnl::thread_stream(), pointers.all());
    }
};

std::vector<float> ramp(float scale) {
    std::vector<float> x(64);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = scale * (static_cast<float>(i) - 32.0f);
    return x;
}

float expected(const std::vector<float>& x, std::size_t i) { return x[i] > 0.0f ? x[i] : 0.0f; }

TEST(DnnlOperands, ACallWithOtherPointersUsesThem) {
    Relu relu;
    auto x1 = ramp(1.0f), x2 = ramp(-2.0f);
    std::vector<float> y1(64, -1.0f), y2(64, -1.0f);
    relu.run(x1, y1);
    relu.run(x2, y2);  // both pointers new
    for (std::size_t i = 0; i < 64; ++i) {
        EXPECT_EQ(y1[i], expected(x1, i)) << i;
        EXPECT_EQ(y2[i], expected(x2, i)) << i;
    }
    std::vector<float> y3(64, -1.0f);
    relu.run(x1, y3);  // the source as two calls ago, a new destination
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(y3[i], expected(x1, i)) << i;
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(y2[i], expected(x2, i)) << "the last call's output was written again";
}

TEST(DnnlOperands, ThreadsSharingOneSetGetTheirOwnAnswers) {
    Relu relu;
    constexpr int kThreads = 4, kRuns = 2000;
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            auto x = ramp(static_cast<float>(t + 1));
            std::vector<float> y(64);
            for (int run = 0; run < kRuns && errors[t].empty(); ++run) {
                std::fill(y.begin(), y.end(), -1.0f);
                relu.run(x, y);
                for (std::size_t i = 0; i < 64; ++i)
                    if (y[i] != expected(x, i)) errors[t] = "run " + std::to_string(run) + " element " + std::to_string(i);
            }
        });
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
}

}  // namespace
#endif

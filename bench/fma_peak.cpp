// FP32 FMA peak micro-benchmark, built and run by bench/fma_peak.py:
//
//     c++ -O3 -march=native -fopenmp bench/fma_peak.cpp -o fma_peak
//     ./fma_peak <threads> <seconds>
//
// Each thread runs CHAINS independent chains acc = acc * m + a in vector registers. The
// chains are independent so the FMA latency (4-5 cycles) is hidden behind the 2 FMA pipes of
// a modern x86 core: peak needs at least latency x pipes chains in flight, and CHAINS leaves
// headroom. Every vector width the compiler was allowed to use (-march=native) is measured,
// because some CPUs (e.g. AMD Zen 4) run 512-bit FMAs at the same rate as 256-bit ones while
// others (Intel with two AVX-512 FMA units) double it. Prints one JSON line per width:
//     {"isa": "avx512", "lanes": 16, "threads": 2, "seconds": ..., "gflops": ...}
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int CHAINS = 12;  // 12 accumulators + 2 constants fit the 16 ymm registers of AVX2
constexpr long INNER = 1L << 16;

// One thread's work: `outer` x INNER x CHAINS vector FMAs. Returns a value derived from every
// accumulator so the compiler cannot drop any chain.
template <typename V, V (*Fma)(V, V, V), V (*Set1)(float), float (*Sum)(V)>
float chains(long outer) {
    V acc[CHAINS];
    for (int k = 0; k < CHAINS; ++k) acc[k] = Set1(1.0f + 0.01f * k);
    const V m = Set1(0.999999f), a = Set1(1e-7f);  // stays finite and normal forever
    for (long o = 0; o < outer; ++o) {
        for (long i = 0; i < INNER; ++i) {
#pragma GCC unroll 12
            for (int k = 0; k < CHAINS; ++k) acc[k] = Fma(acc[k], m, a);
        }
    }
    float s = 0.0f;
    for (int k = 0; k < CHAINS; ++k) s += Sum(acc[k]);
    return s;
}

#if defined(__AVX512F__)
__m512 fma512(__m512 x, __m512 m, __m512 a) { return _mm512_fmadd_ps(x, m, a); }
__m512 set512(float v) { return _mm512_set1_ps(v); }
float sum512(__m512 v) { return _mm512_reduce_add_ps(v); }
#endif
#if defined(__AVX2__) && defined(__FMA__)
__m256 fma256(__m256 x, __m256 m, __m256 a) { return _mm256_fmadd_ps(x, m, a); }
__m256 set256(float v) { return _mm256_set1_ps(v); }
float sum256(__m256 v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    float s = 0.0f;
    for (float x : t) s += x;
    return s;
}
#endif
#if !defined(__AVX2__) || !defined(__FMA__)
// no FMA vector ISA: scalar fmaf (the compiler may still vectorize the independent chains)
float fma1(float x, float m, float a) { return __builtin_fmaf(x, m, a); }
float set1(float v) { return v; }
float sum1(float v) { return v; }
#endif

using Kernel = float (*)(long);

// Runs `kernel` on `threads` threads for about `seconds` and prints the GFLOP/s.
void measure(const char* isa, int lanes, Kernel kernel, int threads, double seconds) {
    const double flops_per_outer = 2.0 * lanes * CHAINS * INNER;
    // calibrate on one thread: how many outer iterations take ~seconds
    auto t0 = std::chrono::steady_clock::now();
    volatile float sink = kernel(4);
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    long outer = static_cast<long>(4 * seconds / (t > 1e-6 ? t : 1e-6));
    if (outer < 1) outer = 1;

    double best = 0.0, best_time = 0.0;
    for (int rep = 0; rep < 3; ++rep) {  // best of 3: the peak is what the core can do
        std::vector<double> per_thread(threads, 0.0);
        auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
        {
            auto s = std::chrono::steady_clock::now();
            sink = kernel(outer);
            per_thread[omp_get_thread_num()] =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
        }
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double gflops = flops_per_outer * outer * threads / wall * 1e-9;
        if (gflops > best) best = gflops, best_time = wall;
    }
    (void)sink;
    std::printf("{\"isa\": \"%s\", \"lanes\": %d, \"chains\": %d, \"threads\": %d, "
                "\"seconds\": %.4f, \"gflops\": %.3f}\n",
                isa, lanes, CHAINS, threads, best_time, best);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    int threads = argc > 1 ? std::atoi(argv[1]) : omp_get_max_threads();
    double seconds = argc > 2 ? std::atof(argv[2]) : 0.5;
    if (threads < 1) threads = 1;
#if defined(__AVX512F__)
    measure("avx512", 16, chains<__m512, fma512, set512, sum512>, threads, seconds);
#endif
#if defined(__AVX2__) && defined(__FMA__)
    measure("avx2", 8, chains<__m256, fma256, set256, sum256>, threads, seconds);
#else
    measure("scalar", 1, chains<float, fma1, set1, sum1>, threads, seconds);
#endif
    return 0;
}

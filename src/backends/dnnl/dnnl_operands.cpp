#include "dnnl_operands.h"

#include "dnnl_post_ops.h"
#include "sol/error.h"

namespace sol::backends::dnnl {

void CallPointers::push(void* pointer) {
    if (count_ == at_.size()) throw Error("internal: more oneDNN operands than a call has room for");
    at_[count_++] = pointer;
}

void Operands::add(int argument, const ::dnnl::memory::desc& desc) {
    arguments_.push_back(argument);
    descs_.push_back(desc);
    bound_.clear();  // rebuilt with every operand by the next execute()
    slots_.clear();
    pointers_.clear();
}

void Operands::execute(const ::dnnl::primitive& primitive, ::dnnl::stream& stream, std::span<void* const> pointers) {
    if (pointers.size() != arguments_.size()) throw Error("internal: a oneDNN call got the wrong number of operands");
    if (busy_.test_and_set(std::memory_order_acquire)) {
        std::unordered_map<int, ::dnnl::memory> own;
        for (std::size_t i = 0; i < arguments_.size(); ++i)
            own.emplace(arguments_[i], ::dnnl::memory(descs_[i], engine(), pointers[i]));
        primitive.execute(stream, own);
        stream.wait();
        return;
    }
    // Released on every way out: the next call must find the objects free.
    struct Release {
        std::atomic_flag& flag;
        ~Release() { flag.clear(std::memory_order_release); }
    } release{busy_};
    if (slots_.empty()) {
        for (std::size_t i = 0; i < arguments_.size(); ++i)
            bound_.emplace(arguments_[i], ::dnnl::memory(descs_[i], engine(), pointers[i]));
        for (std::size_t i = 0; i < arguments_.size(); ++i) slots_.push_back(&bound_.at(arguments_[i]));
        pointers_.assign(pointers.begin(), pointers.end());
    }
    for (std::size_t i = 0; i < pointers.size(); ++i) {
        if (pointers[i] == pointers_[i]) continue;
        *slots_[i] = ::dnnl::memory(descs_[i], engine(), pointers[i]);
        pointers_[i] = pointers[i];
    }
    primitive.execute(stream, bound_);
    stream.wait();  // the objects are free again only when the primitive is done
}

}  // namespace sol::backends::dnnl

// Named attributes of an op (stride, axis, eps, ...): a small ordered map of
// ints, floats, lists of them and strings (a custom layer's library and
// function names), so the table of ops stays generic.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace sol::ir {

using AttributeValue =
    std::variant<std::int64_t, double, std::vector<std::int64_t>, std::vector<double>, std::string>;

class Attributes {
public:
    void set(const std::string& key, AttributeValue value) { values_[key] = std::move(value); }
    bool has(const std::string& key) const { return values_.count(key) != 0; }

    // Getters convert between int and float where that is lossless and throw
    // sol::ShapeError naming the key when it is missing or of another kind.
    std::int64_t get_int(const std::string& key) const;
    std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
    double get_float(const std::string& key) const;
    double get_float(const std::string& key, double fallback) const;
    std::vector<std::int64_t> get_ints(const std::string& key) const;
    std::vector<std::int64_t> get_ints(const std::string& key,
                                       std::vector<std::int64_t> fallback) const;
    std::string get_string(const std::string& key) const;

    const std::map<std::string, AttributeValue>& all() const { return values_; }
    bool operator==(const Attributes& other) const { return values_ == other.values_; }

private:
    std::map<std::string, AttributeValue> values_;
};

std::string to_string(const AttributeValue& value);

}  // namespace sol::ir

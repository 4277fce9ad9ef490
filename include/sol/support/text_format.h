// The small token format SOL's serialized artifacts share (ir/serialize,
// deploy/deployment_plan): space-separated tokens, strings as
// "<length>:<bytes>" so they may hold anything, floats in hex so they
// round-trip exactly.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace sol::support {

class TextWriter {
public:
    TextWriter();
    TextWriter& word(std::string_view text);  // no spaces inside
    TextWriter& integer(std::int64_t value);
    TextWriter& real(double value);
    TextWriter& text(std::string_view value);
    TextWriter& integers(const std::vector<std::int64_t>& values);  // count, then the values
    TextWriter& ids(const std::vector<int>& values);
    TextWriter& line();  // ends a record (for readers of the file)
    std::string str() const { return out_.str(); }

private:
    std::ostringstream out_;
};

class TextReader {
public:
    // `what` names the artifact in errors ("serialized graph").
    TextReader(std::string_view input, std::string what) : input_(input), what_(std::move(what)) {}
    std::string_view word();
    void expect(std::string_view keyword);  // throws unless the next word is `keyword`
    std::int64_t integer();
    double real();
    std::string text();
    std::vector<std::int64_t> integers();
    std::vector<int> ids();
    bool at_end();
    [[noreturn]] void fail(const std::string& message) const;

private:
    void skip_space();
    std::string_view input_;
    std::size_t position_ = 0;
    std::string what_;
};

}  // namespace sol::support

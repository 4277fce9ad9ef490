#include "sol/support/text_format.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <locale>

#include "sol/error.h"

namespace sol::support {

// The program's locale must not change the text (a comma for the point).
TextWriter::TextWriter() { out_.imbue(std::locale::classic()); }

TextWriter& TextWriter::word(std::string_view text) {
    out_ << text << ' ';
    return *this;
}

TextWriter& TextWriter::integer(std::int64_t value) {
    out_ << value << ' ';
    return *this;
}

TextWriter& TextWriter::real(double value) {
    out_ << std::hexfloat << value << std::defaultfloat << ' ';
    return *this;
}

TextWriter& TextWriter::text(std::string_view value) {
    out_ << value.size() << ':' << value << ' ';
    return *this;
}

TextWriter& TextWriter::integers(const std::vector<std::int64_t>& values) {
    integer(static_cast<std::int64_t>(values.size()));
    for (std::int64_t value : values) integer(value);
    return *this;
}

TextWriter& TextWriter::ids(const std::vector<int>& values) {
    integer(static_cast<std::int64_t>(values.size()));
    for (int value : values) integer(value);
    return *this;
}

TextWriter& TextWriter::line() {
    out_ << '\n';
    return *this;
}

void TextReader::fail(const std::string& message) const {
    throw Error(what_ + " is malformed at byte " + std::to_string(position_) + ": " + message);
}

void TextReader::skip_space() {
    while (position_ < input_.size() && std::isspace(static_cast<unsigned char>(input_[position_]))) ++position_;
}

bool TextReader::at_end() {
    skip_space();
    return position_ >= input_.size();
}

std::string_view TextReader::word() {
    skip_space();
    const std::size_t start = position_;
    while (position_ < input_.size() && !std::isspace(static_cast<unsigned char>(input_[position_]))) ++position_;
    if (start == position_) fail("unexpected end");
    return input_.substr(start, position_ - start);
}

void TextReader::expect(std::string_view keyword) {
    const std::string_view found = word();
    if (found != keyword) fail("expected '" + std::string(keyword) + "', found '" + std::string(found) + "'");
}

std::int64_t TextReader::integer() {
    const std::string token(word());
    char* end = nullptr;
    const long long value = std::strtoll(token.c_str(), &end, 10);
    if (end != token.c_str() + token.size()) fail("'" + token + "' is not an integer");
    return value;
}

double TextReader::real() {
    // from_chars, not strtod: a deployed library's host program may have set
    // a locale whose decimal point is a comma.
    const std::string_view token = word();
    std::string_view digits = token;
    const bool negative = !digits.empty() && digits.front() == '-';
    if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) digits.remove_prefix(1);
    if (digits == "inf") return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    if (digits == "nan") return std::numeric_limits<double>::quiet_NaN();
    const bool hex = digits.starts_with("0x") || digits.starts_with("0X");
    if (hex) digits.remove_prefix(2);
    double value = 0.0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value,
                                              hex ? std::chars_format::hex : std::chars_format::general);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
        fail("'" + std::string(token) + "' is not a number");
    return negative ? -value : value;
}

std::string TextReader::text() {
    skip_space();
    const std::size_t colon = input_.find(':', position_);
    if (colon == std::string_view::npos) fail("expected a string");
    const std::string_view length_text = input_.substr(position_, colon - position_);
    std::size_t length = 0;
    const auto [end, error] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    if (length_text.empty() || error != std::errc() || end != length_text.data() + length_text.size())
        fail("expected a string length");
    if (length > input_.size() - colon - 1) fail("a string runs past the end");
    position_ = colon + 1 + length;
    return std::string(input_.substr(colon + 1, length));
}

std::vector<std::int64_t> TextReader::integers() {
    const std::int64_t count = integer();
    if (count < 0) fail("negative count");
    std::vector<std::int64_t> values;
    for (std::int64_t k = 0; k < count; ++k) values.push_back(integer());
    return values;
}

std::vector<int> TextReader::ids() {
    std::vector<int> values;
    for (std::int64_t value : integers()) values.push_back(static_cast<int>(value));
    return values;
}

}  // namespace sol::support

// Small text helpers shared by the /proc, sysfs and simulated-GPU readers (control path).
#pragma once

#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>

namespace zernel {

// std::from_chars over a whole token: trailing garbage ("12x") is a failure.
template <typename T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace zernel

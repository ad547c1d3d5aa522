// The control protocol between zernelctl and a running zernel-scheduler: a line protocol
// over a unix stream socket, one request per connection.
//
//   client: "policy fifo\n"                  (one line, words separated by spaces)
//   server: "<data line>\n" ...              (zero or more)
//           "ok\n" | "error: <what>; fix: <how>\n"   (exactly one, last; then it closes)
//
// Plain text so an operator can also talk to it with socat. Header-only: the scheduler
// and zernelctl share it without zernelctl linking the server.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zernel::control {

inline constexpr std::string_view kDefaultSocketPath = "/run/zernel/scheduler.sock";

// Longest request line, newline included. Requests are a command and a few words; the
// bound keeps a misbehaving client from making the server buffer without limit.
inline constexpr std::size_t kMaxRequestBytes = 4096;

inline constexpr std::string_view kOkLine = "ok";
inline constexpr std::string_view kErrorPrefix = "error: ";

// The commands zernelctl knows. The server answers only the ones the agent registered a
// handler for, and checks the argument count of these before a handler sees them.
struct CommandSpec {
  std::string_view name;
  std::size_t nargs;
  std::string_view usage;
};
inline constexpr std::array<CommandSpec, 5> kCommands{{
    {"status", 0, "status"},
    {"policy", 1, "policy <name>"},
    {"reload", 0, "reload"},
    {"trace", 2, "trace <seconds> <file>"},
    {"phases", 0, "phases"},
}};

inline const CommandSpec* find_command(std::string_view name) {
  for (const CommandSpec& c : kCommands)
    if (c.name == name) return &c;
  return nullptr;
}

// What a handler answers. Construct with ok() or fail() so every error carries a fix.
struct Response {
  std::vector<std::string> lines;  // data lines, printed by zernelctl as they are
  std::string error;               // empty: ok; else "<what>; fix: <how>"

  static Response ok(std::vector<std::string> lines = {}) { return {std::move(lines), {}}; }
  static Response fail(std::string_view what, std::string_view fix) {
    return {{}, std::string(what) + "; fix: " + std::string(fix)};
  }
  bool is_ok() const { return error.empty(); }
};

// Splits a request on spaces and tabs; a trailing "\r" (telnet, socat CRLF) is dropped.
inline std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) words.push_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

// A word the protocol can carry: non-empty, no whitespace or control characters (they
// would split it or end the line).
inline bool is_valid_word(std::string_view w) {
  if (w.empty()) return false;
  for (unsigned char c : w)
    if (c <= ' ' || c == 0x7f) return false;
  return true;
}

inline std::string format_request(std::span<const std::string> words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  out += '\n';
  return out;
}

enum class LineKind { kData, kOk, kError };

inline LineKind classify(std::string_view line) {
  if (line == kOkLine) return LineKind::kOk;
  if (line.starts_with(kErrorPrefix)) return LineKind::kError;
  return LineKind::kData;
}

// The bytes on the wire for a response. A data line with embedded newlines becomes
// several lines, and one that would read as the final line gets a leading space: a
// handler's text can never end the response early or fake an error.
inline std::string format_response(const Response& r) {
  std::string out;
  auto add_data = [&](std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (classify(line) != LineKind::kData) out += ' ';
    out += line;
    out += '\n';
  };
  for (std::string_view text : r.lines) {
    for (std::size_t nl; (nl = text.find('\n')) != std::string_view::npos; text.remove_prefix(nl + 1))
      add_data(text.substr(0, nl));
    add_data(text);
  }
  if (r.is_ok()) {
    out += kOkLine;
  } else {
    out += kErrorPrefix;
    for (char c : r.error) out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  out += '\n';
  return out;
}

}  // namespace zernel::control

// TorchScript code records, read only to be refused. A module that holds only tensors has classes with
// attribute declarations and no methods; a method (__setstate__, forward, ...) is something a loader would
// have to run. Python's tokenizer decides what a definition is, not the text's layout: `def` followed by
// a tab, a form feed or a continued line defines a method just as `def ` does.
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/weights/internal.h"

namespace common::weights {
namespace {

bool identifier_start(unsigned char c) { return c == '_' || std::isalpha(c) != 0 || c >= 0x80; }
bool identifier_char(unsigned char c) { return identifier_start(c) || std::isdigit(c) != 0; }

// Skips whitespace, continuation lines and comments between two tokens.
size_t skip_blank(std::string_view code, size_t i) {
  while (i < code.size()) {
    const char c = code[i];
    if (c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '\\' && i + 1 < code.size() && (code[i + 1] == '\n' || code[i + 1] == '\r')) {
      i += 2;
    } else if (c == '#') {
      while (i < code.size() && code[i] != '\n') ++i;
    } else {
      break;
    }
  }
  return i;
}

// Skips a string literal that starts at i (one quote or three), escapes included.
size_t skip_string(std::string_view code, size_t i) {
  const char quote = code[i];
  const bool triple = code.compare(i, 3, std::string(3, quote)) == 0;
  i += triple ? 3 : 1;
  while (i < code.size()) {
    if (code[i] == '\\') {
      i += 2;
    } else if (triple ? code.compare(i, 3, std::string(3, quote)) == 0 : code[i] == quote) {
      return i + (triple ? 3 : 1);
    } else if (!triple && code[i] == '\n') {
      return i;
    } else {
      ++i;
    }
  }
  return i;
}

}  // namespace

std::vector<std::string> names_after(std::string_view code, std::string_view keyword) {
  std::vector<std::string> methods;
  size_t i = 0;
  while (i < code.size()) {
    const auto c = static_cast<unsigned char>(code[i]);
    if (c == '#') {
      i = skip_blank(code, i);
    } else if (c == '\'' || c == '"') {
      i = skip_string(code, i);
    } else if (identifier_start(c)) {
      const size_t start = i;
      while (i < code.size() && identifier_char(static_cast<unsigned char>(code[i]))) ++i;
      if (code.substr(start, i - start) != keyword) continue;
      // The name is the next token; a `def` with none still defines something, so it is reported too.
      const size_t name = skip_blank(code, i);
      size_t end = name;
      while (end < code.size() && identifier_char(static_cast<unsigned char>(code[end]))) ++end;
      methods.emplace_back(end > name ? code.substr(name, end - name) : std::string_view("(unnamed)"));
      i = end;
    } else if (std::isdigit(c) != 0) {
      while (i < code.size() && identifier_char(static_cast<unsigned char>(code[i]))) ++i;
    } else {
      ++i;
    }
  }
  return methods;
}

std::vector<std::string> defined_methods(std::string_view code) { return names_after(code, "def"); }

std::vector<std::pair<std::string, std::string>> declared_attributes(std::string_view code) {
  // `name : Type` at the start of a line of a class body, and `__annotations__["name"] = Type`: the two
  // forms TorchScript writes for a module's attributes.
  static const std::regex declaration(R"(\n[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t]*([^\n=]*))");
  static const std::regex annotation(R"re(__annotations__\["([^"\\]*)"\][ \t]*=[ \t]*([^\n]*))re");
  std::vector<std::pair<std::string, std::string>> names;
  const std::string text(code);
  for (const std::regex* re : {&declaration, &annotation}) {
    for (std::sregex_iterator it(text.begin(), text.end(), *re, std::regex_constants::match_default), end;
         it != end; ++it)
      names.emplace_back((*it)[1].str(), (*it)[2].str());
  }
  return names;
}

}  // namespace common::weights

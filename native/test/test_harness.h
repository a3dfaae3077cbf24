// A minimal unit-test harness for the native core (no dependency to install).
// Each TEST registers itself; main() runs them all and prints one line per
// test plus a summary the TypeScript wrapper (test/native-core.test.ts)
// parses: "# tests N" and "# failed M". Exit status is non-zero on failure.
#pragma once

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace testing {

struct TestCase {
  const char* name;
  void (*fn)();
};

inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

inline bool& current_failed() {
  static bool failed = false;
  return failed;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline void report_failure(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
  current_failed() = true;
}

}  // namespace testing

#define TEST(name)                                                    \
  static void name();                                                 \
  static ::testing::Registrar registrar_##name(#name, name);          \
  static void name()

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      ::testing::report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
      return;                                                             \
    }                                                                     \
  } while (0)

#define CHECK_EQ(a, b)                                                                  \
  do {                                                                                  \
    const auto va_ = (a);                                                               \
    const auto vb_ = (b);                                                               \
    if (!(va_ == vb_)) {                                                                \
      ::testing::report_failure(__FILE__, __LINE__,                                     \
                                "CHECK_EQ(" #a ", " #b "): " + std::to_string(va_) +  \
                                    " != " + std::to_string(vb_));                      \
      return;                                                                           \
    }                                                                                   \
  } while (0)

#define CHECK_BYTES(got, want, len)                                                     \
  do {                                                                                  \
    const unsigned char* g_ = (got);                                                    \
    const unsigned char* w_ = (want);                                                   \
    for (size_t i_ = 0; i_ < (len); ++i_) {                                             \
      if (g_[i_] != w_[i_]) {                                                           \
        ::testing::report_failure(__FILE__, __LINE__,                                   \
                                  "byte " + std::to_string(i_) + ": got " +             \
                                      std::to_string(g_[i_]) + ", want " +              \
                                      std::to_string(w_[i_]));                          \
        return;                                                                         \
      }                                                                                 \
    }                                                                                   \
  } while (0)

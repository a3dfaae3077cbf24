#include <cstdio>
#include <cstring>

#include "test_harness.h"

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int run = 0, failed = 0;
  for (const auto& t : testing::registry()) {
    if (filter != nullptr && std::strstr(t.name, filter) == nullptr) continue;
    testing::current_failed() = false;
    t.fn();
    ++run;
    if (testing::current_failed()) {
      ++failed;
      std::printf("FAIL %s\n", t.name);
    } else {
      std::printf("ok   %s\n", t.name);
    }
  }
  std::printf("# tests %d\n# failed %d\n", run, failed);
  return failed == 0 && run > 0 ? 0 : 1;
}

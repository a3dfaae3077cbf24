#include "counters.h"

namespace flannel {

const char* const kCounterNames[kCounterCount] = {
#define FLANNEL_COUNTER_NAME(id, name) name,
    FLANNEL_COUNTERS(FLANNEL_COUNTER_NAME)
#undef FLANNEL_COUNTER_NAME
};

}  // namespace flannel

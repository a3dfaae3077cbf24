// Publication of immutable state to forwarding threads without ever blocking
// them: quiescent-state-based reclamation (QSBR, McKenney & Slingwine 1998).
//
// Readers (forwarding threads) call read() at the start of each batch and get
// a pointer that stays valid until their next read() or idle(); they call
// idle() before blocking (in poll), so a sleeping thread never delays
// reclamation. They take no lock and do not wait for anything.
//
// The writer (the JavaScript thread) builds a whole new T and publish()es it;
// the previous version is retired and freed by a later reclaim() once every
// reader has passed a quiescent point after the swap.
//
// Correctness (all atomics seq_cst): a reader R stores its epoch g (read from
// `epoch_`) and then loads `current_`. The writer swaps `current_` (W1), bumps
// `epoch_` to E (W2), and frees the old version only if every reader's stored
// epoch is >= E or idle (W3). If W3 saw R idle, R's later epoch store, and so
// its pointer load, come after W1 in the single total order: R sees the new
// version. If W3 saw g >= E, R's epoch load came after W2, hence after W1.
// Either way R never holds the freed version.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace flannel {

template <typename T>
class StatePublisher {
 public:
  // Up to three reader threads per worker (egress, ingress, and ingress
  // from the IPv6 underlay), and at most 64 workers
  // (native/addon/datapath_wrapper.cc kMaxWorkers).
  static constexpr int kMaxReaders = 192;

  explicit StatePublisher(std::unique_ptr<T> initial) : current_(initial.release()) {}
  StatePublisher(const StatePublisher&) = delete;
  StatePublisher& operator=(const StatePublisher&) = delete;

  // Callers must have stopped every reader first.
  ~StatePublisher() {
    delete current_.load();
    for (auto& r : retired_) delete r.second;
  }

  // --- writer side (any thread; writers are serialized among themselves) ---

  void publish(std::unique_ptr<T> next) {
    std::lock_guard<std::mutex> lock(writer_mu_);
    const T* old = current_.exchange(next.release());
    const uint64_t tag = epoch_.fetch_add(1) + 1;
    retired_.emplace_back(tag, old);
    reclaim_locked();
  }

  // Frees retired versions no reader can hold. Returns how many remain.
  size_t reclaim() {
    std::lock_guard<std::mutex> lock(writer_mu_);
    return reclaim_locked();
  }

  // The current version, for the writer's own inspection. Valid until the
  // writer's next publish().
  const T* current_for_writer() const { return current_.load(); }

  // --- reader side ---

  // A slot for one reader thread, or -1 when all kMaxReaders are taken.
  int register_reader() {
    for (int i = 0; i < kMaxReaders; ++i) {
      bool expected = false;
      if (slots_[i].in_use.compare_exchange_strong(expected, true)) {
        slots_[i].epoch.store(kIdle);
        return i;
      }
    }
    return -1;
  }

  void unregister_reader(int slot) {
    slots_[slot].epoch.store(kIdle);
    slots_[slot].in_use.store(false);
  }

  // Starts a read-side section; ends the previous one.
  const T* read(int slot) {
    slots_[slot].epoch.store(epoch_.load());
    return current_.load();
  }

  // Ends the read-side section: the reader holds no pointer until its next read().
  void idle(int slot) { slots_[slot].epoch.store(kIdle, std::memory_order_release); }

 private:
  static constexpr uint64_t kIdle = UINT64_MAX;

  struct alignas(64) ReaderSlot {
    std::atomic<uint64_t> epoch{kIdle};
    std::atomic<bool> in_use{false};
  };

  size_t reclaim_locked() {
    uint64_t oldest = kIdle;
    for (const ReaderSlot& s : slots_) {
      const uint64_t e = s.epoch.load();
      if (e < oldest) oldest = e;
    }
    size_t kept = 0;
    for (auto& r : retired_) {
      if (r.first <= oldest) {
        delete r.second;
      } else {
        retired_[kept++] = r;
      }
    }
    retired_.resize(kept);
    return kept;
  }

  std::atomic<const T*> current_;
  std::atomic<uint64_t> epoch_{1};
  ReaderSlot slots_[kMaxReaders];
  std::mutex writer_mu_;  // taken by writers only, never by readers
  std::vector<std::pair<uint64_t, const T*>> retired_;
};

}  // namespace flannel

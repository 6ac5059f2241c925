// The rdma transport's unit of asynchronous work: a C++20 coroutine that returns a T.
//
// The rdma listener runs one thread for every connection. A connection's work (its control
// messages, then its descriptors) is one root Task; each RDMA operation it needs is a co_await
// that suspends only that task, so one connection waiting on a slow client or peer ringd never
// delays another (issue 14, part 3). Who resumes a task: the Event it waits on, fired by the
// completion that the listener's loop polled, by a deadline sweep, or by the connection's close.
//
// Rules that keep this single-threaded scheme safe:
//   - Tasks are lazy (nothing runs before Start() or co_await) and owned by their Task object.
//     A nested Task runs to its end before its awaiter resumes (symmetric transfer).
//   - A suspended task is never destroyed: the owner fails every Event it can wait on (close,
//     deadline) and lets it run to its end first. An Event lives in the waiting coroutine's frame.
//   - Events resume their waiter through a ReadyQueue drained by the loop, never from inside the
//     code that fired them (which may be another connection's poll).
#pragma once

#include <coroutine>
#include <cstdlib>
#include <deque>
#include <optional>
#include <utility>

#include "absl/status/status.h"

namespace pinring::ringd::rdma_async {

template <typename T>
class [[nodiscard]] Task {
 public:
  struct promise_type {
    std::optional<T> value;
    std::coroutine_handle<> continuation;  // the awaiting coroutine; none for a root task

    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        // Back to the awaiter, or (root task) to whoever resumed us: the loop.
        if (auto c = h.promise().continuation) return c;
        return std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    template <typename U>
    void return_value(U&& v) {
      value.emplace(std::forward<U>(v));
    }
    // ringd is built without exceptions in its hot paths; an escaped one is a bug.
    void unhandled_exception() noexcept { std::abort(); }
  };

  Task() = default;
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      Reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { Reset(); }

  // Root use: runs the task until its first suspension (or its end).
  void Start() { h_.resume(); }
  bool valid() const { return static_cast<bool>(h_); }
  bool done() const { return !h_ || h_.done(); }
  // REQUIRES: done() of a valid task.
  T& result() { return *h_.promise().value; }

  // Awaiting a Task runs it now; the awaiter resumes when it ends.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    h_.promise().continuation = awaiter;
    return h_;
  }
  T await_resume() { return std::move(*h_.promise().value); }

 private:
  explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
  void Reset() {
    if (h_) h_.destroy();
    h_ = {};
  }
  std::coroutine_handle<promise_type> h_;
};

// Coroutines whose Events fired, waiting to be resumed by the loop (FIFO: fair between
// connections).
class ReadyQueue {
 public:
  void Push(std::coroutine_handle<> h) { q_.push_back(h); }
  // Resumes every ready coroutine, including those made ready meanwhile. True if any ran.
  bool RunAll() {
    bool ran = false;
    while (!q_.empty()) {
      std::coroutine_handle<> h = q_.front();
      q_.pop_front();
      h.resume();
      ran = true;
    }
    return ran;
  }
  bool empty() const { return q_.empty(); }

 private:
  std::deque<std::coroutine_handle<>> q_;
};

// A one-shot event one coroutine waits on: `absl::Status s = co_await event;`. Fire() stores the
// outcome and queues the waiter; firing twice keeps the first outcome.
class Event {
 public:
  explicit Event(ReadyQueue& ready) : ready_(&ready) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void Fire(absl::Status s) {
    if (fired_) return;
    fired_ = true;
    status_ = std::move(s);
    if (waiter_) ready_->Push(std::exchange(waiter_, {}));
  }
  bool fired() const { return fired_; }

  bool await_ready() const noexcept { return fired_; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter_ = h; }
  absl::Status await_resume() { return status_; }

 private:
  ReadyQueue* ready_;
  bool fired_ = false;
  absl::Status status_;
  std::coroutine_handle<> waiter_;
};

}  // namespace pinring::ringd::rdma_async

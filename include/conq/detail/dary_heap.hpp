// conq/detail/dary_heap.hpp
//
// A d-ary implicit heap over a std::vector (d = 2 or 4), used by
// priority_queue (one per queue, or one per shard) and delay_queue. With
// d = 4 the four children of a node sit next to each other, so a sift-down
// step reads one or two cache lines instead of two scattered ones, and the
// tree is half as deep as a binary heap; with d = 2 a step compares less.
// Which is faster depends on the use, so each user picks d from
// measurements (see where it is instantiated). A pop moves the hole from
// the root down to a leaf along the best children, then sifts the last
// element up from there (Floyd's bottom-up variant: about half the
// comparisons of the textbook sift-down, since the last element usually
// belongs near the bottom).
//
// `Before(a, b)` is true when a must come out before b.
#pragma once

#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace conq::detail {

template <class E, class Before, std::size_t Arity = 4>
class dary_heap {
    static_assert(Arity == 2 || Arity == 4, "dary_heap: the arity is 2 or 4");
    static constexpr std::size_t arity = Arity;

public:
    dary_heap() = default;
    explicit dary_heap(Before before) : before_(before) {}

    [[nodiscard]] bool empty() const noexcept { return v_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return v_.size(); }
    void reserve(std::size_t n) { v_.reserve(n); }
    /// Makes room for one more push, growing geometrically.
    void reserve_one_more() {
        if (v_.size() == v_.capacity()) v_.reserve(v_.capacity() + v_.capacity() / 2 + 16);
    }
    [[nodiscard]] std::size_t reserved() const noexcept { return v_.capacity(); }

    [[nodiscard]] E& top() noexcept { return v_.front(); }
    [[nodiscard]] const E& top() const noexcept { return v_.front(); }
    [[nodiscard]] const Before& before() const noexcept { return before_; }

    /// Adds e. May allocate (and throw) unless reserve() made room.
    void push(E&& e) {
        v_.push_back(std::move(e));
        sift_up(v_.size() - 1);
    }

    /// Removes the top element and returns it. \pre !empty()
    E pop() noexcept {
        E out = std::move(v_.front());
        remove_top();
        return out;
    }

    /// Returns the top element and puts e in its place in one sift (cheaper
    /// than pop then push). If e comes before the top, e itself is returned
    /// and the heap is left unchanged. \pre !empty()
    E replace_top(E&& e) noexcept {
        if (before_(e, v_.front())) return std::move(e);
        E out = std::move(v_.front());
        sift_down_from(0, std::move(e));
        return out;
    }

    /// Removes every element (keeps the reserved room).
    void clear() noexcept { v_.clear(); }
    /// Appends e without restoring the heap order; make_heap() must follow
    /// before any other call. May allocate unless reserve() made room.
    void push_unordered(E&& e) { v_.push_back(std::move(e)); }
    /// Restores the heap order over the whole array in O(n) (Floyd).
    void make_heap() noexcept {
        const std::size_t n = v_.size();
        if (n < 2) return;
        for (std::size_t i = parent(n - 1) + 1; i-- > 0;) {
            E e = std::move(v_[i]);
            sift_down_from(i, std::move(e));
        }
    }


private:
    static constexpr std::size_t parent(std::size_t i) noexcept { return (i - 1) / arity; }
    static constexpr std::size_t first_child(std::size_t i) noexcept { return i * arity + 1; }

    void place(std::size_t i, E&& e) noexcept { v_[i] = std::move(e); }

    void sift_up(std::size_t i) noexcept {
        E e = std::move(v_[i]);
        hole_up(i, std::move(e));
    }

    // Fills the hole at i with e, moving the hole up past every parent that
    // e comes before.
    void hole_up(std::size_t i, E&& e) noexcept {
        while (i > 0) {
            const std::size_t p = parent(i);
            if (!before_(e, v_[p])) break;
            place(i, std::move(v_[p]));
            i = p;
        }
        place(i, std::move(e));
    }

    // The best child of i, given that i has at least one child. With all
    // four children present (d = 4) it runs a two-round tournament: the
    // first two comparisons are independent, so they overlap, and the
    // selects compile to conditional moves instead of hard-to-predict
    // branches.
    std::size_t best_child(std::size_t i, std::size_t n) const noexcept {
        const std::size_t c = first_child(i);
        if (c + arity <= n) [[likely]] {
            if constexpr (arity == 2) {
                return before_(v_[c + 1], v_[c]) ? c + 1 : c;
            } else {
                const std::size_t a = before_(v_[c + 1], v_[c]) ? c + 1 : c;
                const std::size_t b = before_(v_[c + 3], v_[c + 2]) ? c + 3 : c + 2;
                return before_(v_[b], v_[a]) ? b : a;
            }
        }
        std::size_t best = c;
        for (std::size_t k = c + 1; k < n; ++k) {
            if (before_(v_[k], v_[best])) best = k;
        }
        return best;
    }

    // Fills the hole at i with e, top-down (replace_top: a fresh element
    // often belongs high up).
    void sift_down_from(std::size_t i, E&& e) noexcept {
        const std::size_t n = v_.size();
        while (first_child(i) < n) {
            const std::size_t c = best_child(i, n);
            if (!before_(v_[c], e)) break;
            place(i, std::move(v_[c]));
            i = c;
        }
        place(i, std::move(e));
    }

    // Fills the hole at i with e, bottom-up (pop: the last element
    // usually belongs near the bottom): walks the hole down along the
    // best children to a leaf, then sifts e up from there. \pre e does not
    // belong above i.
    void fill_hole(std::size_t i, E&& e) noexcept {
        const std::size_t n = v_.size();
        while (first_child(i) < n) {
            const std::size_t c = best_child(i, n);
            place(i, std::move(v_[c]));
            i = c;
        }
        hole_up(i, std::move(e));
    }

    // Fills the hole at the root (its element was moved out) with the last
    // element.
    void remove_top() noexcept {
        const std::size_t last = v_.size() - 1;
        if (last == 0) {
            v_.pop_back();
            return;
        }
        E e = std::move(v_[last]);
        v_.pop_back();
        fill_hole(0, std::move(e));
    }

    std::vector<E> v_;
    [[no_unique_address]] Before before_{};
};

}  // namespace conq::detail

namespace conq::detail {

/// A dary_heap plus one held element outside it: the best element pushed
/// since the last pop, kept out of the heap in the hope that the next pop
/// takes it. A pop then costs nothing when the held element beats the
/// heap's top, and one sift (replace_top) otherwise, where a plain heap
/// pays a sift-up for the push and a full pop. Alternating push/pop, the
/// common pattern of schedulers and of the "hold" benchmark, mostly hits.
template <class E, class Before, std::size_t Arity = 4>
class held_heap {
public:
    held_heap() = default;
    explicit held_heap(Before before) : heap_(before) {}
    held_heap(held_heap&& o) noexcept : heap_(std::move(o.heap_)) {
        if (o.has_) {
            ::new (static_cast<void*>(held_)) E(std::move(*o.held()));
            o.clear_held();
            has_ = true;
        }
    }
    held_heap& operator=(held_heap&& o) noexcept {
        if (this != &o) {
            clear_held();
            heap_ = std::move(o.heap_);
            if (o.has_) {
                ::new (static_cast<void*>(held_)) E(std::move(*o.held()));
                o.clear_held();
                has_ = true;
            }
        }
        return *this;
    }
    ~held_heap() { clear_held(); }

    [[nodiscard]] bool empty() const noexcept { return !has_ && heap_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return heap_.size() + (has_ ? 1 : 0); }
    void reserve(std::size_t n) { heap_.reserve(n); }
    [[nodiscard]] std::size_t reserved() const noexcept { return heap_.reserved(); }
    [[nodiscard]] const Before& before() const noexcept { return heap_.before(); }

    /// The element the next pop() returns. \pre !empty()
    [[nodiscard]] const E& top() const noexcept {
        if (has_ && (heap_.empty() || heap_.before()(*held(), heap_.top()))) return *held();
        return heap_.top();
    }

    /// May allocate (and throw) unless reserve() made room for size() more;
    /// on a throw the heap is unchanged and e was not moved from.
    void push(E&& e) {
        if (!has_) {
            ::new (static_cast<void*>(held_)) E(std::move(e));
            has_ = true;
            return;
        }
        if (heap_.before()(e, *held())) {
            heap_.reserve_one_more();
            heap_.push(std::move(*held()));
            *held() = std::move(e);
        } else {
            heap_.push(std::move(e));
        }
    }

    /// \pre !empty()
    E pop() noexcept {
        if (!has_) return heap_.pop();
        has_ = false;
        E h = std::move(*held());
        held()->~E();
        if (heap_.empty()) return h;
        return heap_.replace_top(std::move(h));
    }

private:
    E* held() noexcept { return std::launder(reinterpret_cast<E*>(held_)); }
    const E* held() const noexcept { return std::launder(reinterpret_cast<const E*>(held_)); }
    void clear_held() noexcept {
        if (has_) {
            held()->~E();
            has_ = false;
        }
    }

    dary_heap<E, Before, Arity> heap_;
    alignas(E) std::byte held_[sizeof(E)];
    bool has_ = false;
};

}  // namespace conq::detail

/**
 * One timer mechanism for every connection of a NAT: a binary min-heap of
 * items keyed by their deadline, with each item's heap index stored in the
 * item itself (no wrapper objects, no Map). The NAT keeps one `setTimeout`
 * armed for the earliest deadline, so 10,000 connections are 10,000 heap
 * entries, not 10,000 Node timers.
 *
 * Callers update lazily: moving a deadline *earlier* must go through
 * `schedule`; moving it later may be left until the item fires, when its
 * owner recomputes the real deadline and schedules again.
 */

/** What the heap needs on an item; both fields belong to the heap. */
export interface TimerItem {
  /** Deadline (ms) while queued. */
  timerAt: number;
  /** Index in the heap, or −1 when not queued. */
  timerIndex: number;
}

export class TimerHeap<T extends TimerItem> {
  private readonly items: T[] = [];

  /** Number of queued items. */
  get size(): number {
    return this.items.length;
  }

  /** The item with the earliest deadline, left queued. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Queues `item` at `at`, or moves it there when already queued. */
  schedule(item: T, at: number): void {
    const i = item.timerIndex;
    if (i < 0) {
      item.timerAt = at;
      item.timerIndex = this.items.length;
      this.items.push(item);
      this.up(item.timerIndex);
      return;
    }
    const earlier = at < item.timerAt;
    item.timerAt = at;
    if (earlier) this.up(i);
    else this.down(i);
  }

  /** Removes `item` if queued. */
  cancel(item: T): void {
    const i = item.timerIndex;
    if (i < 0) return;
    item.timerIndex = -1;
    const last = this.items.pop()!;
    if (last === item) return;
    this.items[i] = last;
    last.timerIndex = i;
    this.up(i);
    this.down(last.timerIndex);
  }

  /** Removes and returns the earliest item when its deadline is at or before `now`. */
  popDue(now: number): T | undefined {
    const top = this.items[0];
    if (top === undefined || top.timerAt > now) return undefined;
    this.cancel(top);
    return top;
  }

  private up(i: number): void {
    const items = this.items;
    const item = items[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = items[p]!;
      if (parent.timerAt <= item.timerAt) break;
      items[i] = parent;
      parent.timerIndex = i;
      i = p;
    }
    items[i] = item;
    item.timerIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && items[c + 1]!.timerAt < items[c]!.timerAt) c++;
      const child = items[c]!;
      if (child.timerAt >= item.timerAt) break;
      items[i] = child;
      child.timerIndex = i;
      i = c;
    }
    items[i] = item;
    item.timerIndex = i;
  }
}

/**
 * A deadline queue for entries that all share one timeout (the per-try read timeout): since
 * every entry is added with now + timeout and the clock is monotonic, appending keeps the
 * list sorted, so one timer armed for the head replaces a setTimeout per query. Removal is
 * O(1) (intrusive doubly-linked list). The timer is re-armed lazily: removing the head does
 * not touch it; when it fires early it just re-arms for the new head.
 */
import type { Clock } from '../../plugin.ts';

export interface TimeoutNode {
  tqPrev: TimeoutNode | null;
  tqNext: TimeoutNode | null;
  /** Absolute deadline (clock ms); -1 while not queued. */
  tqDeadline: number;
  /** Called once when the deadline passes while queued (the node is already unlinked). */
  onTimeout(): void;
}

export class TimeoutQueue {
  private head: TimeoutNode | null = null;
  private tail: TimeoutNode | null = null;
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;
  size = 0;
  private readonly clock: Clock;
  private readonly fire = (): void => this.expire();
  /** Receives exceptions thrown by onTimeout (never rethrown from the timer). */
  onError: (err: unknown) => void = () => {};

  constructor(clock: Clock) {
    this.clock = clock;
  }

  add(n: TimeoutNode, timeoutMs: number): void {
    if (n.tqDeadline >= 0) this.remove(n);
    // Whole milliseconds, rounded up: a small integer is stored unboxed (a double per node is not).
    n.tqDeadline = Math.ceil(this.clock() + timeoutMs);
    n.tqNext = null;
    n.tqPrev = this.tail;
    if (this.tail === null) this.head = n;
    else this.tail.tqNext = n;
    this.tail = n;
    this.size++;
    if (this.timer === null || n.tqDeadline < this.armedFor) this.arm(n.tqDeadline);
  }

  remove(n: TimeoutNode): void {
    if (n.tqDeadline < 0) return;
    if (n.tqPrev === null) this.head = n.tqNext;
    else n.tqPrev.tqNext = n.tqNext;
    if (n.tqNext === null) this.tail = n.tqPrev;
    else n.tqNext.tqPrev = n.tqPrev;
    n.tqPrev = null;
    n.tqNext = null;
    n.tqDeadline = -1;
    this.size--;
    if (this.size === 0) this.disarm();
  }

  /** The entry with the earliest deadline, or null. */
  first(): TimeoutNode | null {
    return this.head;
  }

  /** Cancels the timer; queued nodes stay queued (used at stop, after draining). */
  disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
  }

  private arm(deadline: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedFor = deadline;
    const delay = Math.max(1, Math.ceil(deadline - this.clock()));
    this.timer = setTimeout(this.fire, delay);
    this.timer.unref();
  }

  private expire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = this.clock();
    let n = this.head;
    while (n !== null && n.tqDeadline <= now) {
      this.remove(n);
      try {
        n.onTimeout();
      } catch (err) {
        this.onError(err);
      }
      n = this.head;
    }
    if (n !== null) this.arm(n.tqDeadline);
  }
}

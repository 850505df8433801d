/**
 * The loadbalance handler: wraps the response writer so every response written for the query
 * (a forwarded answer, a cache hit: loadbalance is before cache in the order) has its records
 * reordered by src/wire/shuffle.ts before it goes on toward the client.
 *
 * The wrapper objects are pooled: a query takes one, its response gives it back, so the steady
 * state allocates nothing per query (a response that never comes just leaves one to the GC).
 */
import type { Handler, ResponseWriter } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { loadBalanceResponse, type Subnet } from '../../wire/shuffle.ts';
import type { WeightFile } from './weighted.ts';
import { WeightTable } from '../../wire/weights.ts';

const POOL_MAX = 1024;
/** Weights before the file was read: every address weighs 1. */
const EMPTY = new WeightTable();

class LoadBalanceWriter implements ResponseWriter {
  inner: ResponseWriter | null = null;
  owner: LoadBalanceHandler | null = null;
  writeMsg(req: Request, msg: Buffer, len: number): void {
    const inner = this.inner!;
    const owner = this.owner!;
    this.inner = null;
    this.owner = null;
    owner.release(this);
    req.writer = inner;
    const wf = owner.weights;
    const out = wf === null ? loadBalanceResponse(msg, len, owner.prefer) : loadBalanceResponse(msg, len, null, wf.table ?? EMPTY);
    if (out === null) inner.writeMsg(req, msg, len);
    else inner.writeMsg(req, out, out.length);
  }
}

export class LoadBalanceHandler implements Handler {
  private readonly next: Handler;
  readonly prefer: readonly Subnet[] | null;
  readonly weights: WeightFile | null;
  private readonly pool: LoadBalanceWriter[] = [];
  constructor(next: Handler, prefer: readonly Subnet[] | null, weights: WeightFile | null = null) {
    this.next = next;
    this.prefer = prefer !== null && prefer.length > 0 ? prefer : null;
    this.weights = weights;
  }
  serve(req: Request): void {
    const w = this.pool.pop() ?? new LoadBalanceWriter();
    w.inner = req.writer;
    w.owner = this;
    req.writer = w;
    this.next.serve(req);
  }
  release(w: LoadBalanceWriter): void {
    if (this.pool.length < POOL_MAX) this.pool.push(w);
  }
}

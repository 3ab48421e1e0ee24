import { inject, onScopeDispose, provide, watch, type InjectionKey, type Ref } from "vue";

// Counts the wallet's live balance pushes, so lists that a balance change makes stale
// (ledger, usage, charts, top-ups) refetch when it moves instead of polling.
const walletTickKey: InjectionKey<Ref<number>> = Symbol("walletTick");

export function provideWalletTick(tick: Ref<number>): void {
  provide(walletTickKey, tick);
}

/** Calls `refetch` after each balance push, at most once per `delayMs`. */
export function onWalletChange(refetch: () => void, delayMs = 300): void {
  const tick = inject(walletTickKey);
  if (!tick) return;
  let timer: number | undefined;
  watch(tick, () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refetch, delayMs);
  });
  onScopeDispose(() => window.clearTimeout(timer));
}

import { computed, inject, provide, type InjectionKey, type Ref } from "vue";

// The organization's unit, SpendCap.unit from App's WalletOverview, read there once:
// "usd", or "credit" (plan credits: an Amount's `usd` then counts them). Null until
// known. Every amount of the wallet is shown in it (`formatInUnit`).
const unitKey: InjectionKey<Readonly<Ref<string | null>>> = Symbol("unit");

export function provideUnit(unit: Readonly<Ref<string | null>>): void {
  provide(unitKey, unit);
}

export function useUnit(): Readonly<Ref<string | null>> {
  return inject(unitKey, computed(() => null));
}

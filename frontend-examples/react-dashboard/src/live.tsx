import { createContext, useContext, useEffect, useRef } from "react";
import type { UseQueryExecute } from "urql";

/** Counts the balance changes pushed since the page loaded; panels showing money re-read
 * when it moves, so the ledger, usage and charts follow the live balance. */
export const LiveTick = createContext(0);

/** Re-run a query (bypassing the cache) each time the live tick moves. */
export function useRefetchOnTick(reexecute: UseQueryExecute): void {
  const tick = useContext(LiveTick);
  const seen = useRef(tick);
  useEffect(() => {
    if (seen.current === tick) return;
    seen.current = tick;
    reexecute({ requestPolicy: "network-only" });
  }, [tick, reexecute]);
}

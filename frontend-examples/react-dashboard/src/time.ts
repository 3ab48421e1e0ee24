import { useEffect, useState } from "react";

/** The current time, re-rendered every second (for countdowns). */
export function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  return now;
}

/** "2h 03m 09s" until `iso`, or "now" once it has passed. */
export function countdown(iso: string, now: number): string {
  const seconds = Math.max(0, Math.floor((Date.parse(iso) - now) / 1000));
  if (seconds === 0) return "now";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}h ${pad(m)}m ${pad(s)}s` : `${m}m ${pad(s)}s`;
}

/** A UTC day as "YYYY-MM-DD". */
export function utcDay(iso: string): string {
  return iso.slice(0, 10);
}

/** ``value``, once it has stopped changing for ``ms`` (a filter typed key by key). */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = window.setTimeout(() => setSettled(value), ms);
    return () => window.clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/** The last ``days`` whole UTC days (today included), as the summary panels ask for them:
 * the server rounds since down and until up to days anyway, so this is one range all day. */
export function lastDays(days: number): { since: string; until: string } {
  const until = new Date();
  until.setUTCHours(0, 0, 0, 0);
  until.setUTCDate(until.getUTCDate() + 1);
  const since = new Date(until.getTime() - days * 86_400_000);
  return { since: since.toISOString(), until: until.toISOString() };
}

import { useEffect, useState } from "react";
import { useQuery, useSubscription } from "urql";

import type { Config } from "./config";
import { BalanceChangedDocument, ViewerDocument } from "./gql/graphql";
import { LiveTick } from "./live";
import { Alerts } from "./panels/Alerts";
import { ApiKeys } from "./panels/ApiKeys";
import { AutoReload } from "./panels/AutoReload";
import { AutoScale } from "./panels/AutoScale";
import { BillingHistory } from "./panels/BillingHistory";
import { Breakdowns } from "./panels/Breakdowns";
import { Ledger } from "./panels/Ledger";
import { Overview } from "./panels/Overview";
import { Plan } from "./panels/Plan";
import { PromoCode } from "./panels/PromoCode";
import { Receipts } from "./panels/Receipts";
import { SavedCards } from "./panels/SavedCards";
import { Spend } from "./panels/Spend";
import { SpendCap } from "./panels/SpendCap";
import { Statements } from "./panels/Statements";
import { TopUp } from "./panels/TopUp";
import { Usage } from "./panels/Usage";
import { Webhooks } from "./panels/Webhooks";

export function App({ config }: { config: Config }) {
  const [viewer] = useQuery({ query: ViewerDocument });
  // balanceChanged sends the current balance first, then one push per committed change.
  const [live] = useSubscription({ query: BalanceChangedDocument });
  const pushed = live.data?.balanceChanged;
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (pushed) setTick((t) => t + 1);
  }, [pushed]);

  const org = viewer.data?.viewer.organization;
  return (
    <LiveTick.Provider value={tick}>
      <header>
        <h1>{org ? org.name : "creditgraph"} billing</h1>
        {viewer.data && <span className="muted">signed in as {viewer.data.viewer.role.toLowerCase()}</span>}
        {viewer.error && <p className="error">{viewer.error.message}</p>}
        {live.error && <p className="error">live updates: {live.error.message}</p>}
      </header>
      <main>
        <Overview liveBalance={pushed?.balance.usd ?? null} />
        <TopUp stripePublishableKey={config.stripePublishableKey} />
        <PromoCode />
        <BillingHistory config={config} />
        <Receipts config={config} />
        <Statements config={config} />
        <Plan />
        <AutoReload />
        <SavedCards />
        <AutoScale />
        <SpendCap />
        <ApiKeys />
        <Webhooks />
        <Spend />
        <Breakdowns />
        <Usage config={config} />
        <Ledger config={config} />
        <Alerts />
      </main>
    </LiveTick.Provider>
  );
}

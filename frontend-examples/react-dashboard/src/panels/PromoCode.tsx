import { useState, type FormEvent } from "react";
import { useMutation } from "urql";

import { Problems } from "../errors";
import { RedeemPromoCodeDocument } from "../gql/graphql";
import { formatInUnit } from "../money";
import { isAdmin, useRole, useUnit } from "../viewer";

/** Redeeming a promo code, for owners and admins (the server refuses other roles): hidden
 * from the others. */
export function PromoCode() {
  return isAdmin(useRole()) ? <RedeemPromo /> : null;
}

/** A code's credits land as a grant in a lot expiring as the code says; the balance shown
 * follows from balanceChanged. */
function RedeemPromo() {
  const [code, setCode] = useState("");
  const [redeemed, redeem] = useMutation(RedeemPromoCodeDocument);
  const unit = useUnit();
  const payload = redeemed.data?.redeemPromoCode;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void redeem({ input: { code: code.trim() } });
  };
  return (
    <section data-testid="promo">
      <h2>Promo code</h2>
      <form className="inline" onSubmit={submit}>
        <label>
          Code <input data-testid="promo-code" value={code} onChange={(e) => setCode(e.target.value)} autoComplete="off" required />
        </label>
        <button type="submit" data-testid="promo-redeem" disabled={redeemed.fetching}>
          Redeem
        </button>
      </form>
      {payload?.entry && payload.lot && (
        <p data-testid="promo-result">
          Added {formatInUnit(payload.entry.amount.usd, unit)},{" "}
          {payload.lot.expiresAt ? (
            <>
              expiring <time dateTime={payload.lot.expiresAt}>{new Date(payload.lot.expiresAt).toLocaleString()}</time>
            </>
          ) : (
            "never expiring"
          )}
          .
        </p>
      )}
      <Problems error={redeemed.error} userErrors={payload?.userErrors} />
    </section>
  );
}

import type { ReactNode } from "react";

/** Keyset paging: the cursors walked so far, newest page first (null: the first page). */
export type Cursors = (string | null)[];

interface Props {
  cursors: Cursors;
  setCursors: (cursors: Cursors) => void;
  pageInfo: { hasNextPage: boolean; endCursor?: string | null } | undefined;
  labels: [back: string, on: string];
  /** `data-testid`s `<testId>-prev` and `<testId>-next`, where a panel's contract has them. */
  testId?: string;
  children: ReactNode;
}

/** The back / on buttons under a list, and what sits between them. */
export function Pager({ cursors, setCursors, pageInfo, labels, testId, children }: Props) {
  return (
    <div className="pager">
      <button
        type="button"
        data-testid={testId && `${testId}-prev`}
        disabled={cursors.length === 1}
        onClick={() => setCursors(cursors.slice(0, -1))}
      >
        {labels[0]}
      </button>
      <span className="muted">{children}</span>
      <button
        type="button"
        data-testid={testId && `${testId}-next`}
        disabled={!pageInfo?.hasNextPage}
        onClick={() => pageInfo?.endCursor && setCursors([...cursors, pageInfo.endCursor])}
      >
        {labels[1]}
      </button>
    </div>
  );
}

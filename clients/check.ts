// The generated TypeScript types (openapi-typescript) narrow the event feed by `type`:
// this file compiles under `tsc --strict` only if every event type has its own schema
// with a literal `type` and a typed payload, and the list answers are typed envelopes.
import type { components, paths } from "./generated/api";

type EventPage =
  paths["/api/v1/events"]["get"]["responses"][200]["content"]["application/json"];
type Event = EventPage["items"][number];

export function describe(event: Event): string {
  switch (event.type) {
    case "deviation.reported":
      // The payload is the reported deviation's: a typed field, no cast.
      return `${event.payload.title} (${event.payload.criticality})`;
    case "gate.decided":
      return `gate ${event.payload.decision}`;
    default:
      return event.type;
  }
}

// Every event type is one of the union's members (an unknown one does not compile).
const known: Event["type"][] = ["deviation.reported", "escalation.opened", "cmo.merged"];

// A list answers the envelope, with typed items.
type Team =
  paths["/api/v1/programs/{id}/team"]["get"]["responses"][200]["content"]["application/json"];
export const firstName = (team: Team): string | undefined => team.items[0]?.person.display_name;
// The total only when counted (`count=true`) or free; the next page by cursor.
export const total = (team: Team): number | null | undefined => team.total;
export const nextCursor = (team: Team): string | null | undefined => team.next_cursor;

// Problems are typed too.
export const code = (p: components["schemas"]["Problem"]): string => p.code;
export { known };

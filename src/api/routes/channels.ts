// Live channels of this process and their participants, for operators.
//   GET    /channels                                                             → [{ applicationId, channelId, participants }]
//   PATCH  /applications/:appId/channels/:channelId/participants/:participantId  { muted } → participant
//   DELETE /applications/:appId/channels/:channelId/participants/:participantId  → 204 (WebRTC clients; a phone is hung up with DELETE /calls/:id)
import type { ChannelRegistry, ParticipantInfo } from "../../channels/registry.ts";
import { channelIdSchema, idSchema } from "../../config/entities.ts";
import { s } from "../../config/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import type { ApiRouter } from "../router.ts";

export const participantView = s
  .object({
    id: s.string().describe("The call id of a phone leg, the client id of a WebRTC client."),
    kind: s.enum(["sip", "webrtc"]),
    userId: s.string(),
    userAlias: s.string().optional(),
    callId: s.string().optional(),
    clientId: s.string().optional(),
    address: s.string().optional().describe("The phone number or SIP address of a phone leg."),
    joinedAt: s.string(),
    muted: s.boolean().describe("Muted by an operator: the channel does not hear this participant."),
  })
  .describe("Participant");

const channelView = s
  .object({ applicationId: idSchema, channelId: channelIdSchema, participants: s.array(participantView) })
  .describe("Live channel");

const participantParams = { appId: idSchema, channelId: channelIdSchema, participantId: s.string({ minLength: 1, maxLength: 256 }) };

const viewParticipant = (info: ParticipantInfo): object => {
  const { applicationId: _app, channelId: _channel, ...rest } = info;
  return rest;
};

export function channelRoutes(api: ApiRouter, registry: ChannelRegistry): void {
  const tag = "channels";
  const member = (appId: string, channelId: string, participantId: string) => {
    const found = registry.member(appId, channelId, participantId);
    if (!found) throw notFound("participant", participantId);
    return found;
  };

  api.route(
    {
      method: "get",
      path: "/channels",
      summary: "Live channels of this node with their participants",
      tag,
      response: { status: 200, description: "Channels with at least one participant", schema: s.array(channelView) },
    },
    (c) =>
      c.json(
        registry.list().map(({ applicationId, channelId }) => ({
          applicationId,
          channelId,
          participants: registry.participants(applicationId, channelId).map(viewParticipant),
        })),
      ),
  );

  api.route(
    {
      method: "patch",
      path: "/applications/:appId/channels/:channelId/participants/:participantId",
      params: participantParams,
      summary: "Mute or unmute a participant (the channel stops or resumes hearing it)",
      tag,
      body: s.object({ muted: s.boolean() }),
      response: { status: 200, description: "The participant", schema: participantView },
      errors: [404],
    },
    (c, body, { appId, channelId, participantId }) => {
      const found = member(appId, channelId, participantId);
      found.setMuted(body.muted);
      return c.json(viewParticipant(found.info));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/applications/:appId/channels/:channelId/participants/:participantId",
      params: participantParams,
      summary: "Remove a WebRTC client from the channel (a phone participant is a call: DELETE /calls/:id)",
      tag,
      response: { status: 204, description: "Removed" },
      errors: [404, 409],
    },
    (c, _body, { appId, channelId, participantId }) => {
      const found = member(appId, channelId, participantId);
      if (found.info.kind === "sip") {
        throw new ApiError(409, "is_a_call", `participant ${JSON.stringify(participantId)} is a phone call: hang it up with DELETE /api/v1/calls/${found.info.callId ?? participantId}`);
      }
      found.leave("removed");
      return c.body(null, 204);
    },
  );
}

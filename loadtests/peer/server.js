// The Socket.IO peer of the load tests: a room per case, a seq per room, one broadcast per
// message (Socket.IO encodes it once for the room), websocket transport only, no persistence.
// Speaks the same shapes as Articula's `subscribe` / `post_message` / `event`, with acks.
// Prints `listening <port>` once it accepts connections.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 0);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  pingInterval: 15000,
  pingTimeout: 20000,
  maxHttpBufferSize: 65536,
  perMessageDeflate: false,
});

const seqs = new Map();

io.on("connection", (socket) => {
  socket.on("subscribe", (data, ack) => {
    const caseId = String(data && data.case_id);
    socket.join(caseId);
    if (typeof ack === "function") ack({ seq: seqs.get(caseId) || 0 });
  });
  socket.on("post_message", (data, ack) => {
    const caseId = String(data && data.case_id);
    const seq = (seqs.get(caseId) || 0) + 1;
    seqs.set(caseId, seq);
    io.to(caseId).emit("event", {
      case_id: caseId,
      seq,
      at: Date.now(),
      kind: "message_posted",
      data: { text: String(data && data.text) },
    });
    if (typeof ack === "function") ack({ seq });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});

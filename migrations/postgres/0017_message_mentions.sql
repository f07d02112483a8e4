-- Mentions (issue 19): the users a chat message mentions, as a JSON array of ids (like
-- `attachments`), for the mentioned person's unread count. Messages before this have none.
-- The other database's tree has a file of the same name with the same meaning.
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '[]';

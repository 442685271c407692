"""The naive baseline: the peers workload with one upstream call per field, no loaders."""

from __future__ import annotations

import strawberry
from posts_schema import User, fetch_posts, user

from graftql import Context, GatewaySchema, UpstreamNotFound


@strawberry.type
class Post:
    id: strawberry.ID
    title: str
    author_id: strawberry.Private[str]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None]) -> User | None:
        try:
            return user(
                await info.context.upstreams.rest("users").get("/users/{id}", id=self.author_id)
            )
        except UpstreamNotFound:
            return None


@strawberry.type
class Query:
    @strawberry.field
    async def posts(
        self, info: strawberry.Info[Context, None], limit: int | None = None
    ) -> list[Post]:
        return [
            Post(id=p.id, title=p.title, author_id=p.author_id)
            for p in await fetch_posts(info.context, limit)
        ]


schema = GatewaySchema(query=Query)

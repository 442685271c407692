"""The peers workload as a graftql schema: posts from a GraphQL upstream, their authors from a
REST batch endpoint (``GET /users?ids=1,2,3``), the same join GraphQL Mesh expresses with
``@resolveTo``. ``naive_schema`` is the same schema without loaders, for comparison.
"""

from __future__ import annotations

from typing import Any

import strawberry

from graftql import Context, GatewaySchema, LoaderRegistry, by_key

loaders = LoaderRegistry()

POSTS = "query Posts($limit: Int) { posts(limit: $limit) { id title authorId } }"


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    email: str | None


@strawberry.type
class Post:
    id: strawberry.ID
    title: str
    author_id: strawberry.Private[str]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None]) -> User | None:
        user: User | None = await info.context.loaders["users"].load(self.author_id)
        return user


def user(raw: dict[str, Any]) -> User:
    return User(id=raw["id"], name=raw["name"], email=raw.get("email"))


async def fetch_posts(ctx: Context, limit: int | None) -> list[Post]:
    data = await ctx.upstreams.graphql("posts").execute(POSTS, {"limit": limit})
    return [Post(id=p["id"], title=p["title"], author_id=p["authorId"]) for p in data["posts"]]


@strawberry.type
class Query:
    @strawberry.field
    async def posts(
        self, info: strawberry.Info[Context, None], limit: int | None = None
    ) -> list[Post]:
        return await fetch_posts(info.context, limit)


@loaders.loader("users")
async def load_users(ctx: Context, ids: list[str]) -> list[User | None]:
    body = await ctx.upstreams.rest("users").get("/users", params={"ids": ",".join(ids)})
    return [user(u) if u else None for u in by_key(ids, body, key=lambda u: u["id"])]


schema = GatewaySchema(query=Query, loaders=loaders)

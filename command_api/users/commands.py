"""Requests the users command side accepts; validation here gives clients a 422 that names the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class RegisterUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]

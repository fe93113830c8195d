-- One role and one database per service (the Docker Compose stack runs this once at first start).
CREATE ROLE users LOGIN;
CREATE DATABASE users OWNER users;
CREATE ROLE catalog LOGIN;
CREATE DATABASE catalog OWNER catalog;
CREATE ROLE orders LOGIN;
CREATE DATABASE orders OWNER orders;
CREATE ROLE payments LOGIN;
CREATE DATABASE payments OWNER payments;
